/**
 * Weights in one shared arena. A model's weights and the engine's buffers live in a single
 * shared `WebAssembly.Memory`, so Workers and WebAssembly kernels read them in place. Every
 * tensor is described by plain numbers (offsets, shapes) that can be posted to a Worker, which
 * rebuilds the same views over the same memory.
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

/** Serializable description of a matrix (rows × cols, row-major) in the arena. */
export interface MatrixDesc {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: StorageDType;
  /** Byte offset of the values. */
  readonly offset: number;
  /**
   * Byte offset of the per-block f32 scales (q8, q4 only): {@link paddedRows} × cols/32 of
   * them, followed by as many i32 corrections the q8 kernel uses (see {@link finishMatrix}).
   */
  readonly scaleOffset: number;
}

/** A matrix with typed views over the arena. */
export interface Matrix extends MatrixDesc {
  /**
   * f32: Float32Array; bf16/f16: Uint16Array; q8: Int8Array; q4: Uint8Array (packed). q8/q4
   * rows go in groups of four, interleaved once loading is done (see {@link finishMatrix}).
   */
  readonly data: Float32Array | Uint16Array | Int8Array | Uint8Array;
  /** Block scales for q8/q4, else an empty array. */
  readonly scales: Float32Array;
}

/**
 * Rows a matrix occupies in the arena: q8/q4 rows are stored in groups of four (the last group
 * padded with zero rows), other dtypes as they are.
 */
export function paddedRows(rows: number, dtype: StorageDType): number {
  return dtype === "q8" || dtype === "q4" ? Math.ceil(rows / 4) * 4 : rows;
}

/** Bytes of values and of scales a matrix needs in a given dtype. */
export function matrixBytes(
  rows: number,
  cols: number,
  dtype: StorageDType,
): { data: number; scales: number } {
  const n = paddedRows(rows, dtype) * cols;
  switch (dtype) {
    case "f32":
      return { data: n * 4, scales: 0 };
    case "bf16":
    case "f16":
      return { data: n * 2, scales: 0 };
    // q8/q4: per block a scale, then (after all scales) the engine's offset correction
    case "q8":
      return { data: n, scales: (n / 32) * 8 };
    case "q4":
      return { data: n / 2, scales: (n / 32) * 8 };
  }
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
  #top: number;

  /** Creates an arena of at least `bytes` (plus `reserveStart` bytes kept free at offset 0). */
  constructor(bytes: number, reserveStart = ALIGN) {
    const pages = Math.max(1, Math.ceil((bytes + reserveStart + ALIGN) / PAGE));
    if (pages > 65536) {
      throw new RangeError(
        `the model needs ${(bytes / 2 ** 30).toFixed(2)} GiB of weights in memory, over the ` +
          `4 GiB a WebAssembly memory can address: choose a smaller dtype (bf16, q8, q4)`,
      );
    }
    // The maximum is the whole 4 GiB: only address space is reserved, and the engine grows the
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

  /** Wraps an existing memory (in a Worker): no allocation. */
  static wrap(memory: WebAssembly.Memory, top: number): Arena {
    const a = Object.create(Arena.prototype) as Arena;
    Object.assign(a, { memory, buffer: memory.buffer });
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
    const b = matrixBytes(rows, cols, dtype);
    const offset = this.alloc(b.data);
    const scaleOffset = b.scales ? this.alloc(b.scales) : 0;
    return { rows, cols, dtype, offset, scaleOffset };
  }

  /** Typed views of a matrix description over this arena. */
  view(d: MatrixDesc): Matrix {
    return viewMatrix(this.buffer, d);
  }
}

/**
 * Puts a q8/q4 matrix written row-major (padding rows zero) into the layout the integer kernels
 * read, once all its rows are stored; other dtypes are left as they are.
 *
 * Rows go in groups of four, interleaved by 32-bit words: word `c` of rows `4g..4g+3` are the
 * four words at `4c..4c+3` of the group. A q8 word is four consecutive values of a row; a q4
 * word holds values `4v..4v+3` in its low nibbles and `16+4v..` in its high ones (ggml's block
 * order kept). So one 16-byte load gives four rows × four values, and the kernels' int8 dot
 * product leaves one row's partial sum in each lane: no horizontal sums. Block scales are
 * interleaved the same way (four rows' scales of a block side by side), and for q8 each
 * (row, block) gets the i32 `−64 · Σq` that cancels the +64 offset of its activations.
 */
export function finishMatrix(buffer: ArrayBufferLike, d: MatrixDesc): void {
  if (d.dtype !== "q8" && d.dtype !== "q4") return;
  const pr = paddedRows(d.rows, d.dtype), nb = d.cols / 32;
  const rowWords = d.dtype === "q8" ? d.cols / 4 : d.cols / 8;
  interleaveGroups(new Uint32Array(buffer, d.offset, pr * rowWords), pr, rowWords);
  interleaveGroups(new Uint32Array(buffer, d.scaleOffset, pr * nb), pr, nb);
  if (d.dtype !== "q8") return;
  const q = new Int8Array(buffer, d.offset, pr * d.cols);
  const corr = new Int32Array(buffer, d.scaleOffset + pr * nb * 4, pr * nb);
  // interleaved, block b of group g is 128 bytes: its word c·4 + j belongs to row j
  for (let gb = 0; gb < (pr / 4) * nb; gb++) {
    for (let j = 0; j < 4; j++) {
      let s = 0;
      for (let c = 0; c < 8; c++) {
        const o = gb * 128 + c * 16 + j * 4;
        s += q[o] + q[o + 1] + q[o + 2] + q[o + 3];
      }
      corr[gb * 4 + j] = -64 * s;
    }
  }
}

/** Within each group of four rows of `words`-word rows: word c of row j goes to c·4 + j. */
function interleaveGroups(a: Uint32Array, rows: number, words: number): void {
  const tmp = new Uint32Array(4 * words);
  for (let g = 0; g < rows; g += 4) {
    const base = g * words;
    tmp.set(a.subarray(base, base + 4 * words));
    for (let j = 0; j < 4; j++) {
      const src = j * words;
      for (let c = 0; c < words; c++) a[base + c * 4 + j] = tmp[src + c];
    }
  }
}

/** Index of byte `p` of row `r` in a finished q8/q4 matrix's data (`rowBytes` per row). */
export function groupedByte(r: number, p: number, rowBytes: number): number {
  return (r >> 2) * 4 * rowBytes + (p >> 2) * 16 + (r & 3) * 4 + (p & 3);
}

/** Index of the scale of block `b` of row `r` in a finished q8/q4 matrix (`nb` blocks per row). */
export function groupedScale(r: number, b: number, nb: number): number {
  return (r >> 2) * 4 * nb + b * 4 + (r & 3);
}

/** Typed views of a matrix description over `buffer`. */
export function viewMatrix(buffer: ArrayBufferLike, d: MatrixDesc): Matrix {
  const n = paddedRows(d.rows, d.dtype) * d.cols;
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
    data,
    scales,
  };
}
