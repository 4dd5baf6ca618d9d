/**
 * Weights in one arena of CPU memory (a shared `WebAssembly.Memory`, so a CPU backend may read
 * them in place from several threads). Every tensor is described by plain numbers (offsets,
 * shapes) that can be sent elsewhere and turned back into the same views over the same memory.
 * Matrices are stored row-major; a backend that wants another arrangement supplies a
 * {@link MatrixLayout} that rearranges each matrix once it is loaded.
 * @module
 */

/**
 * How a matrix's values are stored.
 * @example
 * ```ts ignore
 * const stored: StorageDType = model.info.dtype; // e.g. "bf16"
 * ```
 */
export type StorageDType = "f32" | "bf16" | "f16" | "q8" | "q4";

/**
 * Serializable description of a matrix (rows × cols, row-major) in the arena.
 * @example
 * ```ts ignore
 * const d: MatrixDesc = arena.allocMatrix(1024, 4096, "q8");
 * ```
 */
export interface MatrixDesc {
  /** Output size (rows, as torch stores the weight). */
  readonly rows: number;
  /** Input size. */
  readonly cols: number;
  /** How the values are stored. */
  readonly dtype: StorageDType;
  /** Byte offset of the values. */
  readonly offset: number;
  /** Byte offset of the per-block f32 scales (q8, q4 only): `storedRows` × cols/32 of them. */
  readonly scaleOffset: number;
  /** Rows the values occupy (≥ rows: a {@link MatrixLayout} may pad). */
  readonly storedRows: number;
}

/**
 * A matrix with typed views over the arena.
 * @example
 * ```ts ignore
 * const m: Matrix = arena.view(d); // m.data: Int8Array for q8, m.scales: Float32Array
 * ```
 */
export interface Matrix extends MatrixDesc {
  /**
   * f32: Float32Array; bf16/f16: Uint16Array; q8: Int8Array; q4: Uint8Array (two values per
   * byte, ggml's Q4_0 order), row-major unless the arena's {@link MatrixLayout} rearranged them.
   */
  readonly data: Float32Array | Uint16Array | Int8Array | Uint8Array;
  /** Block scales for q8/q4, else an empty array. */
  readonly scales: Float32Array;
}

/**
 * How an arena lays out matrices: the space each needs, and a rearrangement applied once all of a
 * matrix's rows are stored row-major (values at `offset`, one f32 scale per block of 32 at
 * `scaleOffset`, row-major too).
 * @example
 * ```ts ignore
 * const arena = new Arena(bytes, 64, PLAIN_LAYOUT);
 * ```
 */
export interface MatrixLayout {
  /** Rows stored (≥ `rows`), and bytes of values and of the scale region. */
  bytes(
    rows: number,
    cols: number,
    dtype: StorageDType,
  ): { storedRows: number; data: number; scales: number };
  /** Rearranges a matrix once its rows are stored (nothing for row-major). */
  finish(buffer: ArrayBufferLike, d: MatrixDesc): void;
}

/** Bytes per value of a dtype (q4: half a byte). */
function valueBytes(dtype: StorageDType): number {
  return dtype === "f32" ? 4 : dtype === "q8" ? 1 : dtype === "q4" ? 0.5 : 2;
}

/**
 * Row-major matrices, one f32 scale per block of 32 (q8/q4): the layout the reference reads.
 * @example
 * ```ts ignore
 * PLAIN_LAYOUT.bytes(4, 64, "q8"); // { storedRows: 4, data: 256, scales: 32 }
 * ```
 */
export const PLAIN_LAYOUT: MatrixLayout = {
  bytes(rows, cols, dtype) {
    const n = rows * cols, q = dtype === "q8" || dtype === "q4";
    return { storedRows: rows, data: n * valueBytes(dtype), scales: q ? (n / 32) * 4 : 0 };
  },
  finish() {},
};

/** Bytes of values and of scales a matrix needs in a given dtype and layout. */
export function matrixBytes(
  rows: number,
  cols: number,
  dtype: StorageDType,
  layout: MatrixLayout = PLAIN_LAYOUT,
): { data: number; scales: number } {
  const b = layout.bytes(rows, cols, dtype);
  return { data: b.data, scales: b.scales };
}

const PAGE = 65536;
const ALIGN = 64;

/**
 * One shared memory and a bump allocator over it. Its size is planned up front (weights are
 * listed before any is read), so it never grows while views are live.
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  buffer: SharedArrayBuffer;
  /** How matrices are laid out. */
  readonly layout: MatrixLayout;
  #top: number;

  /** Creates an arena of at least `bytes` (plus `reserveStart` bytes kept free at offset 0). */
  constructor(bytes: number, reserveStart = ALIGN, layout: MatrixLayout = PLAIN_LAYOUT) {
    this.layout = layout;
    const pages = Math.max(1, Math.ceil((bytes + reserveStart + ALIGN) / PAGE));
    if (pages > 65536) {
      throw new RangeError(
        `the model needs ${(bytes / 2 ** 30).toFixed(2)} GiB of weights in memory, over the ` +
          `4 GiB a WebAssembly memory can address: choose a smaller dtype (bf16, q8, q4)`,
      );
    }
    // The maximum is the whole 4 GiB: only address space is reserved, and a backend grows the
    // memory once after loading to add its activation buffers.
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.#top = reserveStart;
  }

  /** Grows the memory so that `bytes` more can be allocated; views made before stay valid. */
  reserve(bytes: number): void {
    const need = Math.ceil(this.#top / ALIGN) * ALIGN + bytes + ALIGN;
    const have = this.memory.buffer.byteLength;
    if (need > have) {
      const pages = Math.ceil((need - have) / PAGE);
      if (have / PAGE + pages > 65536) {
        throw new RangeError("the model and its buffers need more than 4 GiB of memory");
      }
      this.memory.grow(pages);
    }
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
  }

  /** Wraps an existing memory (in another thread): no allocation. */
  static wrap(memory: WebAssembly.Memory, top: number): Arena {
    const a = Object.create(Arena.prototype) as Arena;
    Object.assign(a, { memory, buffer: memory.buffer, layout: PLAIN_LAYOUT });
    a.#top = top;
    return a;
  }

  /** Bytes allocated so far. */
  get used(): number {
    return this.#top;
  }

  /** Bytes in the arena. */
  get size(): number {
    return this.buffer.byteLength;
  }

  /** Reserves `bytes`, aligned to 64 bytes; returns the offset. */
  alloc(bytes: number): number {
    const off = Math.ceil(this.#top / ALIGN) * ALIGN;
    if (off + bytes > this.buffer.byteLength) {
      throw new RangeError(`arena full: need ${off + bytes} bytes, have ${this.buffer.byteLength}`);
    }
    this.#top = off + bytes;
    return off;
  }

  /** A new zeroed f32 vector in the arena. */
  f32(n: number): Float32Array {
    return new Float32Array(this.buffer, this.alloc(n * 4), n);
  }

  /** Reserves space for a matrix and returns its description. */
  allocMatrix(rows: number, cols: number, dtype: StorageDType): MatrixDesc {
    const b = this.layout.bytes(rows, cols, dtype);
    const offset = this.alloc(b.data);
    const scaleOffset = b.scales ? this.alloc(b.scales) : 0;
    return { rows, cols, dtype, offset, scaleOffset, storedRows: b.storedRows };
  }

  /** Typed views of a matrix description over this arena. */
  view(d: MatrixDesc): Matrix {
    return viewMatrix(this.buffer, d);
  }
}

/** Typed views of a matrix description over `buffer`. */
export function viewMatrix(buffer: ArrayBufferLike, d: MatrixDesc): Matrix {
  const n = d.storedRows * d.cols;
  let data: Matrix["data"];
  switch (d.dtype) {
    case "f32":
      data = new Float32Array(buffer, d.offset, n);
      break;
    case "bf16":
    case "f16":
      data = new Uint16Array(buffer, d.offset, n);
      break;
    case "q8":
      data = new Int8Array(buffer, d.offset, n);
      break;
    case "q4":
      data = new Uint8Array(buffer, d.offset, n / 2);
      break;
  }
  const scales = d.dtype === "q8" || d.dtype === "q4"
    ? new Float32Array(buffer, d.scaleOffset, n / 32)
    : new Float32Array(0);
  return {
    rows: d.rows,
    cols: d.cols,
    dtype: d.dtype,
    offset: d.offset,
    scaleOffset: d.scaleOffset,
    storedRows: d.storedRows,
    data,
    scales,
  };
}
