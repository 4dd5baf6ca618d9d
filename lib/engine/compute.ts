/**
 * The `Compute` one Worker of the team offers the model's math (lib/model/ops.ts): its share
 * of every matrix product runs in the WebAssembly kernels, then the team meets at a barrier.
 * Buffers come from the shared memory: shared ones at the same offset in every Worker (the
 * runners ask for them in the same order everywhere), private ones from this Worker's region.
 * @module
 */

import {
  type Activation,
  type Compute,
  decodeRow,
  normTS,
  type Product,
  type ShiftForm,
  shiftTS,
  tmixTS,
  type V7TimeMixArgs,
  v7TimeMixTS,
  type Wkv4Args,
  wkv4TS,
  wkv5TS,
} from "../model/ops.ts";
import type { Matrix } from "../model/tensor.ts";
import { type Kernels, quantizedBytes } from "./kernels.ts";

/** Slots of the control block (Int32 indices into shared memory). */
export const CTRL = {
  /** Job counter: the main thread bumps it to start a forward pass. */
  job: 0,
  /** Number of the last finished job (member 0 writes it). */
  done: 1,
  /** Tokens in this job. */
  tokens: 2,
  /** 1: logits after every token. */
  every: 3,
  /** Barrier: members arrived in this generation. */
  barCount: 4,
  /** Barrier: generation counter. */
  barGen: 5,
  logitsOffset: 6,
  logitsLength: 7,
  /** Non-zero when a member failed. */
  error: 8,
  /** Non-zero: members leave their loop. */
  quit: 9,
  size: 16,
} as const;

/**
 * Bytes of a member's product scratch for products of up to `maxT` tokens and `maxCols`
 * columns: the quantized activations of q8/q4, or one reordered f32 input of bf16.
 */
export function productScratchBytes(maxT: number, maxCols: number): number {
  return Math.max(quantizedBytes(Math.ceil((maxT * maxCols) / 32) * 32), 4 * maxCols) + 64;
}

/** `ew` op codes of the activations. */
const ACT_OP: Record<Activation, number> = { tanh: 0, sigmoid: 1, relusq: 2 };

/** Rows of a product are split between members in multiples of this (whole cache lines of y). */
export const ROW_ALIGN = 16;

/** A bump allocator over a region of the shared memory. */
export class Region {
  #top: number;
  readonly start: number;
  readonly end: number;
  constructor(readonly memory: WebAssembly.Memory, start: number, size: number) {
    this.start = this.#top = start;
    this.end = start + size;
  }
  /** Reserves `bytes` (64-byte aligned) and returns their offset. */
  bytes(n: number): number {
    const off = Math.ceil(this.#top / 64) * 64;
    if (off + n > this.end) throw new RangeError("engine region exhausted");
    this.#top = off + n;
    return off;
  }
  /** A zeroed f32 vector. */
  f32(n: number): Float32Array {
    const v = new Float32Array(this.memory.buffer, this.bytes(n * 4), n);
    v.fill(0);
    return v;
  }
}

/** Counts what a runner allocates, to size the regions before any Worker starts. */
export class CountingCompute implements Compute {
  /** Bytes of shared buffers (with alignment slack). */
  shared = 0;
  /** Bytes of private buffers (with alignment slack). */
  private = 0;
  matmul(): void {}
  matmuls(): void {}
  buffer(n: number, shared: boolean): Float32Array {
    const b = Math.ceil((n * 4) / 64) * 64 + 64;
    if (shared) this.shared += b;
    else this.private += b;
    // Nothing runs on these: an empty array keeps the dry run from allocating.
    return new Float32Array(0);
  }
  row(): void {}
  wkv5(): void {}
  norm(): void {}
  shift(): void {}
  tmix(): void {}
  add(): void {}
  act(): void {}
  sigmoidMulAdd(): void {}
  siluMul(): void {}
  wkv4(): void {}
  v7TimeMix(): void {}
}

/**
 * Generation-counter barrier over the control block: the last to arrive resets the count and
 * bumps the generation. The others spin first (the team is usually microseconds apart, and
 * waking from Atomics.wait costs tens of microseconds, more than a small product), then sleep.
 */
export function barrier(ctrl: Int32Array, parties: number): void {
  if (parties === 1) return;
  const gen = Atomics.load(ctrl, CTRL.barGen);
  if (Atomics.add(ctrl, CTRL.barCount, 1) === parties - 1) {
    Atomics.store(ctrl, CTRL.barCount, 0);
    Atomics.add(ctrl, CTRL.barGen, 1);
    Atomics.notify(ctrl, CTRL.barGen);
    return;
  }
  for (let spin = 0; spin < 1_000_000; spin++) {
    if (Atomics.load(ctrl, CTRL.barGen) !== gen) return;
  }
  while (Atomics.load(ctrl, CTRL.barGen) === gen) Atomics.wait(ctrl, CTRL.barGen, gen, 100);
}

/** The items [i0, i1) member `id` of `n` takes of `count` (heads: contiguous, near even). */
export function share(count: number, id: number, n: number): [number, number] {
  const per = Math.ceil(count / n), i0 = Math.min(count, id * per);
  return [i0, Math.min(count, i0 + per)];
}

/** The rows [r0, r1) member `id` of `n` computes of a product with `rows` rows. */
export function rowShare(rows: number, id: number, n: number): [number, number] {
  const per = Math.ceil(rows / n / ROW_ALIGN) * ROW_ALIGN;
  const r0 = Math.min(rows, id * per);
  return [r0, Math.min(rows, r0 + per)];
}

/** One team member's machine. */
export class WorkerCompute implements Compute {
  readonly #k: Kernels;
  readonly #ctrl: Int32Array;
  readonly #id: number;
  readonly #n: number;
  readonly #shared: Region;
  readonly #private: Region;
  readonly #xq: number; // this member's quantized activations (q8/q4) or bf16/f16 decode scratch

  /** `scratchBytes`: this member's product scratch, from {@link productScratchBytes}. */
  constructor(
    kernels: Kernels,
    ctrl: Int32Array,
    id: number,
    n: number,
    shared: Region,
    priv: Region,
    scratchBytes: number,
  ) {
    this.#k = kernels;
    this.#ctrl = ctrl;
    this.#id = id;
    this.#n = n;
    this.#shared = shared;
    this.#private = priv;
    this.#xq = priv.bytes(scratchBytes);
  }

  buffer(n: number, shared: boolean): Float32Array {
    return (shared ? this.#shared : this.#private).f32(n);
  }

  row(m: Matrix, row: number, out: Float32Array): void {
    decodeRow(m, row, out);
  }

  /**
   * The hot function: this member's rows of `y = m · x` for T tokens, then the barrier (all
   * of y is written when anyone returns).
   */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    this.#share(m, x, y, T);
    barrier(this.#ctrl, this.#n);
  }

  /** This member's rows of each product in turn, then one barrier. */
  matmuls(products: Product[], T: number): void {
    for (const [m, x, y] of products) this.#share(m, x, y, T);
    barrier(this.#ctrl, this.#n);
  }

  /**
   * This member's rows of `y = m · x`. q8/q4 inputs are quantized by every member alike into
   * its private buffer (T × cols values: cheap next to the product).
   */
  #share(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    const [r0, r1] = rowShare(m.rows, this.#id, this.#n);
    const k = this.#k;
    if (r1 > r0) {
      switch (m.dtype) {
        case "f32":
          k.matmul_f32(m.offset, 0, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
          break;
        // bf16/f16: the scratch lets the one-token path reorder x once per product
        case "bf16":
          k.matmul_bf16(m.offset, this.#xq, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
          break;
        case "f16":
          k.matmul_f16(m.offset, this.#xq, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
          break;
        case "q8":
          k.quantize(x.byteOffset, this.#xq, T * m.cols, 1);
          k.matmul_q8(m.offset, m.scaleOffset, this.#xq, y.byteOffset, m.rows, m.cols, T, r0, r1);
          break;
        case "q4":
          k.quantize(x.byteOffset, this.#xq, T * m.cols, 0);
          k.matmul_q4(m.offset, m.scaleOffset, this.#xq, y.byteOffset, m.rows, m.cols, T, r0, r1);
          break;
      }
    }
  }

  // The element-wise steps: every vector lives in the shared memory, so the kernels take
  // byte offsets; shapes the kernels do not cover (N or A not a multiple of 4) use the TS.
  norm(
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    out: Float32Array,
    n: number,
    groups: number,
    wrap: number,
    eps: number,
  ): void {
    if (n % 4) return normTS(x, w, b, out, n, groups, wrap, eps);
    this.#k.norm(x.byteOffset, w.byteOffset, b.byteOffset, out.byteOffset, n, groups, wrap, eps);
  }

  shift(
    cur: Float32Array,
    prev: Float32Array,
    mix: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
    form: ShiftForm,
  ): void {
    if (C % 4) return shiftTS(cur, prev, mix, out, T, C, form);
    const k = this.#k, f = form === "toCur" ? 1 : form === "diff" ? 2 : 0;
    k.shift(cur.byteOffset, prev.byteOffset, mix.byteOffset, out.byteOffset, C, T, f);
  }

  tmix(
    op: "lerp" | "decay",
    x: Float32Array,
    dx: Float32Array,
    base: Float32Array,
    off: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
  ): void {
    if (C % 4) return tmixTS(op, x, dx, base, off, out, T, C);
    const o = (a: Float32Array) => a.byteOffset;
    this.#k.tmix(o(x), o(dx), o(base), o(off), o(out), C, T, op === "decay" ? 1 : 0);
  }

  add(x: Float32Array, y: Float32Array, n: number): void {
    this.#k.ew(y.byteOffset, y.byteOffset, x.byteOffset, n, 5);
  }

  act(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
    this.#k.ew(x.byteOffset, x.byteOffset, out.byteOffset, n, ACT_OP[kind]);
  }

  sigmoidMulAdd(r: Float32Array, v: Float32Array, x: Float32Array, n: number): void {
    this.#k.ew(r.byteOffset, v.byteOffset, x.byteOffset, n, 3);
  }

  siluMul(g: Float32Array, y: Float32Array, n: number): void {
    this.#k.ew(g.byteOffset, g.byteOffset, y.byteOffset, n, 4);
  }

  wkv4(a: Wkv4Args): void {
    if (a.A % 4) return wkv4TS(a);
    const o = (x: Float32Array) => x.byteOffset;
    this.#k.wkv4(
      o(a.r),
      o(a.k),
      o(a.v),
      o(a.first),
      o(a.decay),
      o(a.aa),
      o(a.bb),
      o(a.pp),
      o(a.out),
      a.A,
      a.T,
    );
  }

  /** This member's heads of the time mix: gates, recurrence, output; then the barrier. */
  v7TimeMix(a: V7TimeMixArgs): void {
    const { H, N, T } = a, C = H * N;
    if (N % 4) {
      // a head size no kernel covers: member 0 runs the TS alone (out is shared)
      if (this.#id === 0) v7TimeMixTS(a);
    } else {
      const [h0, h1] = share(H, this.#id, this.#n), n = h1 - h0, k = this.#k;
      // every vector advanced to this member's first head; the state by whole heads
      const o = (x: Float32Array) => x.byteOffset + h0 * N * 4;
      if (n > 0) {
        k.v7_gates(
          o(a.a0),
          o(a.al),
          o(a.w0),
          o(a.wl),
          a.v0 ? o(a.v0) : 0,
          o(a.vl),
          o(a.v),
          o(a.vFirst),
          o(a.kkW),
          o(a.ka),
          o(a.k),
          o(a.wDecay),
          o(a.vMix),
          o(a.kkN),
          o(a.kkA),
          o(a.kMod),
          n,
          N,
          T,
          C,
        );
        k.wkv7(
          a.S.byteOffset + h0 * N * N * 4,
          o(a.r),
          o(a.wDecay),
          o(a.kMod),
          o(a.vMix),
          o(a.kkN),
          o(a.kkA),
          o(a.y),
          n,
          N,
          T,
          C,
        );
        k.v7_out(
          o(a.y),
          o(a.out),
          o(a.lnw),
          o(a.lnb),
          o(a.r),
          o(a.kMod),
          o(a.rk),
          o(a.vMix),
          o(a.g),
          n,
          N,
          T,
          C,
          64e-5,
        );
      }
    }
    barrier(this.#ctrl, this.#n);
  }

  /** As wkv7, for RWKV-5/6. */
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
    T: number,
    decayPerToken: boolean,
  ): void {
    if (N % 4) {
      if (this.#id === 0) wkv5TS(S, r, k, v, w, u, y, H, N, T, decayPerToken);
    } else {
      const [h0, h1] = share(H, this.#id, this.#n), o = h0 * N * 4;
      if (h1 > h0) {
        this.#k.wkv5(
          S.byteOffset + o * N,
          r.byteOffset + o,
          k.byteOffset + o,
          v.byteOffset + o,
          w.byteOffset + o,
          u.byteOffset + o,
          y.byteOffset + o,
          h1 - h0,
          N,
          T,
          H * N,
          decayPerToken ? H * N : 0,
        );
      }
    }
    barrier(this.#ctrl, this.#n);
  }
}
