/**
 * Load-time byte work in WebAssembly SIMD (`simd.wat`, built into `_simd_wasm.ts`): the q8/q4
 * kernels' matrix layout produced in place in an arena memory, the embedding's layer norm,
 * f32 → bf16, and ggml's Q8_0/Q4_0 blocks taken apart into integers and scales. Each result is
 * bit-identical to the TypeScript it stands in for (which stays as the fallback where
 * WebAssembly SIMD or multi-memory is missing: {@link LoadSimd.create} returns undefined).
 *
 * An instance works on one target memory (memory 0, imported: an arena memory, or a small one of
 * its own) and has a scratch memory of its own (memory 1) that grows on demand: views of the
 * scratch ({@link LoadSimd.bytes}, {@link LoadSimd.floats}) hold until the next
 * {@link LoadSimd.reserve}.
 * @module
 */

import { SIMD_WASM_BASE64 } from "./_simd_wasm.ts";

interface Exports {
  scratch: WebAssembly.Memory;
  finish_q8(data: number, scales: number, corr: number, pr: number, cols: number): void;
  finish_q4_panels(data: number, scales: number, pr: number, cols: number, pw: number): void;
  finish_q8_0(
    data: number,
    scales: number,
    corr: number,
    rows: number,
    cols: number,
    mul: number,
  ): void;
  norm_rows(x: number, w: number, b: number, rows: number, n: number, eps: number): void;
  f32_to_bf16(src: number, dst: number, n: number): void;
  split_blocks(raw: number, k: number, size: number, q: number, s: number, mul: number): void;
  compact_blocks(at: number, k: number, size: number, s: number, mul: number): void;
  dequant_q8(q: number, s: number, out: number, n: number): void;
  dequant_q8_0(raw: number, out: number, n: number, mul: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where this runtime cannot compile it. */
function module(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      const bin = atob(SIMD_WASM_BASE64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      compiled = new WebAssembly.Module(bytes);
    } catch {
      compiled = null; // no SIMD or no multi-memory: the callers keep their TypeScript
    }
  }
  return compiled;
}

const PAGE = 65536;
const perMemory = new WeakMap<WebAssembly.Memory, LoadSimd>();
const memoryOf = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();

/**
 * The SIMD helpers over one target memory, with a scratch memory of their own.
 * @example
 * ```ts
 * const simd = LoadSimd.create();
 * if (simd) {
 *   simd.reserve(3 * 4 * 8);
 *   const x = simd.floats(0, 8), w = simd.floats(32, 8), b = simd.floats(64, 8);
 *   x.set([1, 2, 3, 4, 5, 6, 7, 8]);
 *   w.fill(1);
 *   simd.normRows(0, 32, 64, 1, 8, 1e-5); // x layer-normed in place
 * }
 * ```
 */
export class LoadSimd {
  readonly #x: Exports;
  /** The memory the helpers write matrices into (memory 0). */
  readonly target: WebAssembly.Memory;

  private constructor(x: Exports, target: WebAssembly.Memory) {
    this.#x = x;
    this.target = target;
  }

  /** Whether this runtime compiles the helpers (WebAssembly SIMD and multi-memory). */
  static get supported(): boolean {
    return module() !== null;
  }

  /**
   * New helpers over `target` (a shared memory; default: a small one of their own), or
   * undefined where this runtime lacks WebAssembly SIMD or multi-memory.
   */
  static create(target?: WebAssembly.Memory): LoadSimd | undefined {
    const m = module();
    if (!m) return undefined;
    const t = target ?? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    try {
      const inst = new WebAssembly.Instance(m, { env: { target: t } });
      return new LoadSimd(inst.exports as unknown as Exports, t);
    } catch {
      return undefined; // e.g. a memory that is not shared
    }
  }

  /**
   * The helpers of `target`, made once per memory (their scratch is only used inside one
   * synchronous call, so every caller may share them).
   */
  static for(target: WebAssembly.Memory): LoadSimd | undefined {
    let s = perMemory.get(target);
    if (!s) {
      s = LoadSimd.create(target);
      if (s) perMemory.set(target, s);
    }
    return s;
  }

  /**
   * Notes that `buffer` is `memory`'s (current) buffer, so that {@link LoadSimd.forBuffer} finds
   * the helpers of a view's memory (an arena notes each buffer it hands out).
   */
  static noteBuffer(buffer: ArrayBufferLike, memory: WebAssembly.Memory): void {
    memoryOf.set(buffer, memory);
  }

  /** The helpers of the memory whose buffer `buffer` is, when noted; else undefined. */
  static forBuffer(buffer: ArrayBufferLike): LoadSimd | undefined {
    const m = memoryOf.get(buffer);
    return m && LoadSimd.for(m);
  }

  /** Grows the scratch to at least `bytes` (earlier views of it are then detached). */
  reserve(bytes: number): void {
    const have = this.#x.scratch.buffer.byteLength;
    if (bytes > have) this.#x.scratch.grow(Math.ceil((bytes - have) / PAGE));
  }

  /** Bytes `[offset, offset + length)` of the scratch. */
  bytes(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.#x.scratch.buffer, offset, length);
  }

  /** `n` f32 of the scratch at byte `offset` (a multiple of 4). */
  floats(offset: number, n: number): Float32Array {
    return new Float32Array(this.#x.scratch.buffer, offset, n);
  }

  /**
   * Rearranges a q8 matrix stored row-major in the target (`pr` rows, a multiple of 4, of
   * `cols` values at `data`; f32 scales at `scales`) into the wasm kernels' layout, with the i16
   * corrections at `corr` (see lib/backend/wasm/layout.ts).
   */
  finishQ8(data: number, scales: number, corr: number, pr: number, cols: number): void {
    this.reserve(4 * cols);
    this.#x.finish_q8(data, scales, corr, pr, cols);
  }

  /**
   * A q8 matrix read into the target as ggml Q8_0 blocks (`rows` rows of `cols`/32 blocks of
   * 34 bytes from `data`, running past the values' room into the scale region) rearranged in
   * place into what storing its rows row-major (the scales times `mul`, a power of two) and
   * {@link LoadSimd.finishQ8} give: rows padded to a multiple of 4 with zero rows, scales at
   * `scales`, corrections at `corr`.
   */
  finishQ8_0(
    data: number,
    scales: number,
    corr: number,
    rows: number,
    cols: number,
    mul = 1,
  ): void {
    this.reserve((4 * 34 * cols) / 32);
    this.#x.finish_q8_0(data, scales, corr, rows, cols, mul);
  }

  /**
   * Likewise a q4 matrix (`pr` rows, a multiple of 4), in column panels of `pw` columns (the last
   * the rest; `pw` = `cols` for one) within blocks of 64 rows: each (block, panel) piece laid out
   * as a matrix of its own, its groups in bands of two, the pieces one after another (see the wasm
   * backend's `layout.ts`).
   */
  finishQ4Panels(data: number, scales: number, pr: number, cols: number, pw: number): void {
    this.reserve(40 * cols);
    this.#x.finish_q4_panels(data, scales, pr, cols, pw);
  }

  /**
   * Layer-norms `rows` runs of `n` f32 at scratch offset `x` in place, with weights at `w` and
   * biases at `b` (scratch), bit-identical to `normTS` (sums in doubles, in order).
   */
  normRows(x: number, w: number, b: number, rows: number, n: number, eps: number): void {
    this.#x.norm_rows(x, w, b, rows, n, eps);
  }

  /** `n` f32 at scratch offset `src` as bf16 at target offset `dst`, as `f32ToBf16`. */
  f32ToBf16(src: number, dst: number, n: number): void {
    this.#x.f32_to_bf16(src, dst, n);
  }

  /**
   * `k` ggml blocks of `size` bytes (34: Q8_0, 18: Q4_0) at scratch offset `raw` into their
   * integers at `q` and their f16 scales, as f32 times `mul` (a power of two), at `s`.
   */
  splitBlocks(raw: number, k: number, size: number, q: number, s: number, mul = 1): void {
    this.#x.split_blocks(raw, k, size, q, s, mul);
  }

  /**
   * `n` q8 values (a multiple of 32) at scratch offset `q` times their blocks' f32 scales at `s`,
   * as f32 at `out` (all scratch), as `dequantizeQ8`.
   */
  dequantQ8(q: number, s: number, out: number, n: number): void {
    this.#x.dequant_q8(q, s, out, n);
  }

  /**
   * `n` values (a multiple of 32) of ggml Q8_0 blocks at scratch offset `raw` as f32 at `out`
   * (scratch), their scales times `mul` (a power of two): as {@link LoadSimd.splitBlocks} then
   * {@link LoadSimd.dequantQ8}, in one pass.
   */
  dequantQ8_0(raw: number, out: number, n: number, mul = 1): void {
    this.#x.dequant_q8_0(raw, out, n, mul);
  }

  /**
   * `k` ggml blocks of `size` bytes at target offset `at` taken apart in place: their integers
   * moved down to `at`, one block after another, their scales (as f32, times `mul`) to scratch
   * offset `s`.
   */
  compactBlocks(at: number, k: number, size: number, s: number, mul = 1): void {
    this.#x.compact_blocks(at, k, size, s, mul);
  }
}
