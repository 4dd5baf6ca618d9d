/**
 * The `Compute` one Worker of a team offers the model's math: its share of every matrix
 * product runs in the WebAssembly kernels, then the team meets at a barrier. Buffers come from
 * the shared memory: shared ones at the same offset in every Worker (allocated in the same
 * order), private ones from this Worker's own region.
 * @module
 */

import { type Compute, decodeRow, matmulRowsTS, wkv5TS, wkv7TS } from "../model/ops.ts";
import type { Matrix } from "../model/tensor.ts";
import type { Kernels } from "./kernels.ts";

/** Control block slots (Int32 indices). */
export const CTRL = {
  job: 0,
  done: 1,
  tokens: 2,
  every: 3,
  barCount: 4,
  barGen: 5,
  logitsOffset: 6,
  logitsLength: 7,
  error: 8,
  quit: 9,
  size: 16,
} as const;

/** A bump allocator over a region of the shared memory. */
export class Region {
  #top: number;
  readonly end: number;
  constructor(readonly memory: WebAssembly.Memory, start: number, size: number) {
    this.#top = start;
    this.end = start + size;
  }
  /** Bytes used so far. */
  get top(): number {
    return this.#top;
  }
  f32(n: number): Float32Array {
    const off = Math.ceil(this.#top / 64) * 64;
    if (off + n * 4 > this.end) throw new RangeError("engine region exhausted");
    this.#top = off + n * 4;
    return new Float32Array(this.memory.buffer, off, n);
  }
  bytes(n: number): number {
    const off = Math.ceil(this.#top / 64) * 64;
    if (off + n > this.end) throw new RangeError("engine region exhausted");
    this.#top = off + n;
    return off;
  }
}

/** Counts what a runner allocates (to size the regions before starting Workers). */
export class CountingCompute implements Compute {
  shared = 0;
  private = 0;
  maxCols = 0;
  matmul(m: Matrix): void {
    this.maxCols = Math.max(this.maxCols, m.cols);
  }
  buffer(n: number, shared: boolean): Float32Array {
    const b = Math.ceil((n * 4) / 64) * 64 + 64;
    if (shared) this.shared += b;
    else this.private += b;
    return new Float32Array(0);
  }
  row(): void {}
  wkv7(): void {}
  wkv5(): void {}
}

/** Spins briefly, then sleeps: a barrier costs a few microseconds when cores are free. */
export function barrier(ctrl: Int32Array, parties: number): void {
  if (parties === 1) return;
  const gen = Atomics.load(ctrl, CTRL.barGen);
  if (Atomics.add(ctrl, CTRL.barCount, 1) === parties - 1) {
    Atomics.store(ctrl, CTRL.barCount, 0);
    Atomics.add(ctrl, CTRL.barGen, 1);
    Atomics.notify(ctrl, CTRL.barGen);
    return;
  }
  // Spin for up to a few milliseconds: the other members are usually microseconds away, and
  // waking from Atomics.wait costs ~50–70 µs, far more than a small product.
  for (let spin = 0; spin < 2_000_000; spin++) {
    if (Atomics.load(ctrl, CTRL.barGen) !== gen) return;
  }
  while (Atomics.load(ctrl, CTRL.barGen) === gen) Atomics.wait(ctrl, CTRL.barGen, gen, 50);
}

/** One team member's machine. */
export class WorkerCompute implements Compute {
  readonly #k: Kernels;
  readonly #ctrl: Int32Array;
  readonly #id: number;
  readonly #n: number;
  readonly #shared: Region;
  readonly #private: Region;
  readonly #xq: number; // quantized activations (bytes)
  readonly #xs: number; // their block scales
  #scratch: Float32Array;

  constructor(
    kernels: Kernels,
    ctrl: Int32Array,
    id: number,
    n: number,
    shared: Region,
    priv: Region,
    maxActivations: number,
  ) {
    this.#k = kernels;
    this.#ctrl = ctrl;
    this.#id = id;
    this.#n = n;
    this.#shared = shared;
    this.#private = priv;
    this.#xq = priv.bytes(maxActivations);
    this.#xs = priv.bytes((maxActivations / 32) * 4 + 64);
    this.#scratch = new Float32Array(0);
  }

  buffer(n: number, shared: boolean): Float32Array {
    return (shared ? this.#shared : this.#private).f32(n);
  }

  row(m: Matrix, row: number, out: Float32Array): void {
    decodeRow(m, row, out);
  }

  wkv7(
    S: Float32Array,
    r: Float32Array,
    w: Float32Array,
    k: Float32Array,
    v: Float32Array,
    kk: Float32Array,
    b: Float32Array,
    y: Float32Array,
    H: number,
    N: number,
  ): void {
    if (N % 4) return wkv7TS(S, r, w, k, v, kk, b, y, H, N);
    this.#k.wkv7(
      S.byteOffset,
      r.byteOffset,
      w.byteOffset,
      k.byteOffset,
      v.byteOffset,
      kk.byteOffset,
      b.byteOffset,
      y.byteOffset,
      H,
      N,
    );
  }

  wkv5(
    S: Float32Array,
    r: Float32Array,
    k: Float32Array,
    v: Float32Array,
    w: Float32Array,
    u: Float32Array,
    y: Float32Array,
    H: number,
    N: number,
  ): void {
    if (N % 4) return wkv5TS(S, r, k, v, w, u, y, H, N);
    this.#k.wkv5(
      S.byteOffset,
      r.byteOffset,
      k.byteOffset,
      v.byteOffset,
      w.byteOffset,
      u.byteOffset,
      y.byteOffset,
      H,
      N,
    );
  }

  /** The hot function: this member's rows of `y = m · x` for T tokens, then the barrier. */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    const rows = m.rows, cols = m.cols;
    // Split rows evenly, in multiples of 4 so members never share a cache line of y.
    const per = Math.ceil(rows / this.#n / 4) * 4;
    const r0 = Math.min(rows, this.#id * per), r1 = Math.min(rows, r0 + per);
    const k = this.#k;
    if (r1 > r0) {
      switch (m.dtype) {
        case "f32":
          k.mm_f32(m.offset, x.byteOffset, y.byteOffset, rows, cols, T, r0, r1);
          break;
        case "bf16":
          k.mm_bf16(m.offset, x.byteOffset, y.byteOffset, rows, cols, T, r0, r1);
          break;
        case "q8":
        case "q4": {
          k.quant_x(x.byteOffset, this.#xq, this.#xs, T * cols);
          const mm = m.dtype === "q8" ? k.mm_q8 : k.mm_q4;
          mm(m.offset, m.scaleOffset, this.#xq, this.#xs, y.byteOffset, rows, cols, T, r0, r1);
          break;
        }
        default:
          if (this.#scratch.length < cols) this.#scratch = new Float32Array(cols);
          matmulRowsTS(m, x, y, T, r0, r1, this.#scratch);
      }
    }
    barrier(this.#ctrl, this.#n);
  }
}
