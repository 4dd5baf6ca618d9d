/**
 * Weights in an arena of CPU memory (shared `WebAssembly.Memory`s, so a CPU backend may read
 * them in place from several threads): one memory while the weights fit beside a backend's
 * buffers in 4 GiB (a 32-bit memory's reach), else the matrices in memories of their own, each
 * up to 4 GiB, and everything else in the first. Every tensor is described by plain numbers
 * (memory, offsets, shapes) that can be sent elsewhere and turned back into the same views.
 * Matrices are stored row-major; a backend that wants another arrangement supplies a
 * {@link MatrixLayout} that rearranges each matrix once it is loaded.
 * @module
 */

import { LoadSimd } from "../formats/simd.ts";
import { adviseHugePages, faultHugePages, HUGE_PAGE_BYTES, hugePagesWanted } from "./huge_pages.ts";

/**
 * How a matrix's values are stored.
 * @example
 * ```ts
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const stored: StorageDType = model.info.dtype; // e.g. "bf16"
 * ```
 */
export type StorageDType = "f32" | "bf16" | "f16" | "q8" | "q4";

/**
 * Serializable description of a matrix (rows × cols, row-major) in the arena.
 * @example
 * ```ts
 * declare const arena: Arena;
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
  /**
   * Which of the arena's memories holds values and scales: 0 (or absent) the first, k ≥ 1 its
   * k-th memory of matrices ({@link Arena.memories}).
   */
  readonly memory?: number;
}

/**
 * A matrix with typed views over the arena.
 * @example
 * ```ts
 * declare const arena: Arena, d: MatrixDesc;
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
 * ```ts
 * const bytes = 64 * 2 ** 20; // room for the weights
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
  /**
   * Rearranges a matrix once its rows are stored (nothing for row-major). `memory`, when given,
   * is the WebAssembly memory whose buffer `buffer` is (the arena's memory of the matrix), so
   * the rearrangement may run in WebAssembly.
   */
  finish(buffer: ArrayBufferLike, d: MatrixDesc, memory?: WebAssembly.Memory): void;
  /**
   * Optional: arranges a q8 matrix whose rows were read in as ggml Q8_0 blocks from `d.offset`
   * (rows·cols/32 blocks of 34 bytes, an IEEE-half scale then 32 int8, running past the values'
   * room into the scale region) in place, exactly as storing the rows row-major (every scale
   * times `scaleMul`, a power of two) and then {@link MatrixLayout.finish} would. False when it
   * cannot (nothing changed): the caller then takes the blocks apart and calls `finish`.
   */
  finishQ8_0?(
    buffer: ArrayBufferLike,
    d: MatrixDesc,
    memory: WebAssembly.Memory | undefined,
    scaleMul: number,
  ): boolean;
}

/** Bytes per value of a dtype (q4: half a byte). */
function valueBytes(dtype: StorageDType): number {
  return dtype === "f32" ? 4 : dtype === "q8" ? 1 : dtype === "q4" ? 0.5 : 2;
}

/**
 * Row-major matrices, one f32 scale per block of 32 (q8/q4): the layout the reference reads.
 * @example
 * ```ts
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
/** Pages of a 32-bit WebAssembly memory at most: 4 GiB. */
const MAX_PAGES = 65536;

/**
 * Weights that may share one memory with a backend's buffers (its activations and states): a
 * larger model puts its matrices in memories of their own. Measured: the kernels reading weights
 * from a second memory run 0.95× as fast from cache, no slower from DRAM (kernels_test, the
 * README's Engine section), so models that fit keep the one memory.
 */
export const SINGLE_MEMORY_BYTES = 3 * 2 ** 30;

/**
 * Options of an {@link Arena}.
 * @example
 * ```ts
 * import { KERNEL_LAYOUT } from "../backend/wasm/layout.ts";
 * const bytes = 64 * 2 ** 20; // room for the weights
 * const arena = new Arena(bytes, 64, KERNEL_LAYOUT, { matrixMemoryBytes: 2 ** 20 });
 * ```
 */
export interface ArenaOptions {
  /**
   * Puts the matrices in memories of their own, each holding at most this many bytes (a matrix
   * larger than it gets a memory to itself). Default: only when `bytes` exceeds
   * {@link SINGLE_MEMORY_BYTES}, then 4 GiB less 64 KiB a memory. Small values make tests take
   * the large-model path on small models.
   */
  matrixMemoryBytes?: number;
  /**
   * Asks Linux for transparent huge pages for the memories (default false; see
   * `huge_pages.ts`: needs FFI permission, else nothing changes), which then grow in steps of
   * 2 MiB. Decoding streams the weights, and 2 MiB pages read them faster: 1.03–1.05× on 2.9B q8
   * and q4 in one process.
   */
  hugePages?: boolean;
}

const ENV_SPLIT = "RWKV_MATRIX_MEMORY_BYTES";

/**
 * `RWKV_MATRIX_MEMORY_BYTES`, when set and readable without asking: the default of
 * {@link ArenaOptions.matrixMemoryBytes} for every arena (to run whole test files down the
 * large-model path: `RWKV_MATRIX_MEMORY_BYTES=65536 deno test -A tests/engine_test.ts`).
 */
function envMatrixMemoryBytes(): number | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: ENV_SPLIT }).state !== "granted") {
      return undefined;
    }
    const v = Deno.env.get(ENV_SPLIT);
    return v === undefined || v === "" ? undefined : Number(v);
  } catch {
    return undefined;
  }
}

/**
 * Shared memories and a bump allocator over each. Vectors and a backend's buffers go to the
 * first memory ({@link Arena.memory}); matrices go there too, or, for a model too large for one
 * 32-bit memory, to memories of matrices that grow as they fill. Growing a shared memory keeps
 * every view made before valid.
 * @example
 * ```ts
 * const arena = new Arena(2 ** 20, 64, PLAIN_LAYOUT); // 1 MiB for the weights
 * const d = arena.allocMatrix(64, 256, "q8");
 * console.log(arena.view(d).rows); // 64
 * ```
 */
export class Arena {
  /** The first memory: vectors, a backend's buffers, and the matrices unless split. */
  readonly memory: WebAssembly.Memory;
  /** The first memory's current buffer. */
  buffer: SharedArrayBuffer;
  /** How matrices are laid out. */
  readonly layout: MatrixLayout;
  /**
   * Every memory, the first at 0, then the memories of matrices (none unless split). A matrix's
   * {@link MatrixDesc.memory} indexes this.
   */
  readonly memories: WebAssembly.Memory[];
  /** Bytes a memory of matrices holds at most (0: matrices share the first memory). */
  readonly matrixMemoryBytes: number;
  #top: number;
  #tops: number[] = [0];
  /** Whether the memories get huge pages (the option, the environment, the system). */
  #huge = false;
  /** False once the kernel refused an advice. */
  #adviceTaken = true;

  /**
   * Creates an arena for `bytes` of weights (plus `reserveStart` bytes kept free at offset 0):
   * one memory of that size, or, beyond {@link SINGLE_MEMORY_BYTES} or with
   * `options.matrixMemoryBytes`, a small first memory and memories of matrices made as needed.
   */
  constructor(
    bytes: number,
    reserveStart = ALIGN,
    layout: MatrixLayout = PLAIN_LAYOUT,
    options: ArenaOptions = {},
  ) {
    this.layout = layout;
    const split = options.matrixMemoryBytes ?? envMatrixMemoryBytes() ??
      (bytes > SINGLE_MEMORY_BYTES ? (MAX_PAGES - 1) * PAGE : 0);
    if (!(split >= 0) || split > (MAX_PAGES - 1) * PAGE) {
      throw new RangeError(`matrixMemoryBytes must be from 1 to 4 GiB − 64 KiB, not ${split}`);
    }
    this.matrixMemoryBytes = split;
    this.#huge = hugePagesWanted(options.hugePages);
    const need = split ? 1 : Math.max(1, Math.ceil((bytes + reserveStart + ALIGN) / PAGE));
    if (need > MAX_PAGES) throw new RangeError("the weights need more than 4 GiB of memory");
    const pages = this.#huge && !split ? this.#hugeRound(need) : need;
    // The maximum is the whole 4 GiB: only address space is reserved, and a backend grows the
    // memory once after loading to add its activation buffers.
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    if (this.#huge && !split) this.#hugeFill(this.memory, 0);
    this.memories = [this.memory];
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.#top = reserveStart;
  }

  /** Grows the first memory so that `bytes` more can be allocated; views made before stay valid. */
  reserve(bytes: number): void {
    this.#grow(0, Math.ceil(this.#top / ALIGN) * ALIGN + bytes + ALIGN);
  }

  /** Grows memory `k` to at least `need` bytes. */
  #grow(k: number, need: number): void {
    const m = this.memories[k];
    const have = m.buffer.byteLength;
    if (need > have) {
      const needPages = Math.ceil(need / PAGE);
      if (needPages > MAX_PAGES) {
        throw new RangeError(
          k ? "a memory of matrices is full" : "the model's buffers need more than 4 GiB of memory",
        );
      }
      m.grow((this.#huge ? this.#hugeRound(needPages) : needPages) - have / PAGE);
      if (this.#huge) this.#hugeFill(m, have);
    }
    if (k === 0) this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
  }

  /** `pages` rounded up to whole huge pages, at most 4 GiB. */
  #hugeRound(pages: number): number {
    const per = HUGE_PAGE_BYTES / PAGE;
    return Math.min(MAX_PAGES, Math.ceil(pages / per) * per);
  }

  /**
   * Advises huge pages for what `memory` has committed, then faults in its fresh bytes from
   * `from` (never written: they are zero) to its end, so that the load writes into them.
   */
  #hugeFill(memory: WebAssembly.Memory, from: number): void {
    const end = memory.buffer.byteLength;
    this.#adviceTaken &&= adviseHugePages(memory, end);
    faultHugePages(memory, from, end);
  }

  /** Whether the memories were given huge pages (see `huge_pages.ts`). */
  get hugePages(): boolean {
    return this.#huge && this.#adviceTaken;
  }

  /** Bytes allocated so far in the first memory. */
  get used(): number {
    return this.#top;
  }

  /** Bytes allocated so far in every memory. */
  get usedTotal(): number {
    return this.#tops.reduce((a, b) => a + b, this.#top);
  }

  /** Bytes the first memory can still hold (it grows up to 4 GiB). */
  get room(): number {
    return MAX_PAGES * PAGE - Math.ceil(this.#top / ALIGN) * ALIGN;
  }

  /** Bytes in the first memory. */
  get size(): number {
    return this.buffer.byteLength;
  }

  /** Reserves `bytes` in the first memory, aligned to 64 bytes; returns the offset. */
  alloc(bytes: number): number {
    const off = Math.ceil(this.#top / ALIGN) * ALIGN;
    if (this.matrixMemoryBytes) this.#grow(0, off + bytes);
    else if (off + bytes > this.buffer.byteLength) {
      throw new RangeError(`arena full: need ${off + bytes} bytes, have ${this.buffer.byteLength}`);
    }
    this.#top = off + bytes;
    return off;
  }

  /** A new zeroed f32 vector in the arena. */
  f32(n: number): Float32Array {
    const offset = this.alloc(n * 4); // first: it may grow the memory, and so the buffer
    return new Float32Array(this.buffer, offset, n);
  }

  /** Reserves space for a matrix and returns its description. */
  allocMatrix(rows: number, cols: number, dtype: StorageDType): MatrixDesc {
    const b = this.layout.bytes(rows, cols, dtype);
    if (!this.matrixMemoryBytes) {
      const offset = this.alloc(b.data);
      const scaleOffset = b.scales ? this.alloc(b.scales) : 0;
      return { rows, cols, dtype, offset, scaleOffset, storedRows: b.storedRows };
    }
    // Values and scales in one memory of matrices: the last one, or a new one when full.
    const need = (top: number) => {
      const offset = Math.ceil(top / ALIGN) * ALIGN;
      const scaleOffset = b.scales ? Math.ceil((offset + b.data) / ALIGN) * ALIGN : 0;
      return { offset, scaleOffset, end: b.scales ? scaleOffset + b.scales : offset + b.data };
    };
    let k = this.memories.length - 1;
    let at = k ? need(this.#tops[k]) : undefined;
    if (!at || (at.end > this.matrixMemoryBytes && this.#tops[k] > ALIGN)) {
      at = need(ALIGN); // offset 0 stays unused, as in the first memory
      if (at.end > MAX_PAGES * PAGE) {
        throw new RangeError(`a ${rows}×${cols} ${dtype} matrix needs more than 4 GiB`);
      }
      const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
      this.memories.push(memory);
      this.#tops.push(0);
      k++;
    }
    this.#grow(k, at.end);
    this.#tops[k] = at.end;
    const { offset, scaleOffset } = at;
    return { rows, cols, dtype, offset, scaleOffset, storedRows: b.storedRows, memory: k };
  }

  /**
   * The current buffer of the memory holding matrix `d` (noted for {@link LoadSimd.forBuffer},
   * so that a reader given a view of it may work in that memory).
   */
  bufferOf(d: MatrixDesc): SharedArrayBuffer {
    const memory = this.memories[d.memory ?? 0];
    const buffer = memory.buffer as unknown as SharedArrayBuffer;
    LoadSimd.noteBuffer(buffer, memory);
    return buffer;
  }

  /** The current buffers of every memory ({@link Arena.memories}' order). */
  get buffers(): SharedArrayBuffer[] {
    return this.memories.map((m) => m.buffer as unknown as SharedArrayBuffer);
  }

  /** Typed views of a matrix description over this arena. */
  view(d: MatrixDesc): Matrix {
    return viewMatrix(this.bufferOf(d), d);
  }
}

/**
 * Typed views of a matrix description over `buffer`, or over the one of `buffers` (an arena's
 * memories' buffers, {@link Arena.buffers}) that holds it.
 */
export function viewMatrix(
  buffers: ArrayBufferLike | readonly ArrayBufferLike[],
  d: MatrixDesc,
): Matrix {
  const buffer = Array.isArray(buffers) ? buffers[d.memory ?? 0] : buffers as ArrayBufferLike;
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
    memory: d.memory ?? 0,
    data,
    scales,
  };
}

/**
 * Storage asked for the large matrices: `auto` keeps the checkpoint's own float type.
 * @example
 * ```ts
 * import { loadModel } from "../load.ts";
 * const dtype: WeightDType = "q4";
 * await loadModel("model.pth", { dtype });
 * ```
 */
export type WeightDType = "auto" | StorageDType;

/**
 * Where one loaded tensor lives in the arena.
 * @example
 * ```ts
 * const bias: TensorDesc = { kind: "vec", offset: 4096, length: 768 };
 * ```
 */
export type TensorDesc =
  | { readonly kind: "vec"; readonly offset: number; readonly length: number }
  | { readonly kind: "mat"; readonly desc: MatrixDesc };
