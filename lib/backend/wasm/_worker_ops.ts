/**
 * The {@link Ops} one Worker of the team runs: its share of every matrix product (`_products.ts`)
 * and recurrence in the WebAssembly kernels, then the team meets at a barrier; the cheap
 * per-token steps are computed alike by every member into its own buffers. Buffers come from the
 * shared memory: those the plan (`plan.ts`) marks shared at the same offset in every Worker (the
 * forward pass asks for them in the same order everywhere), the others from this Worker's region.
 * @module
 */

import type {
  Activation,
  Ops,
  Product,
  Segment,
  V7TimeMixArgs,
  Wkv4Args,
} from "../../model/ops.ts";
import { ReferenceOps } from "../reference/ops.ts";
import type { Matrix } from "../../model/tensor.ts";
import type { Kernels } from "./kernels.ts";
import { decodeRowGrouped } from "./layout.ts";
import { barrier } from "./_barrier.ts";
import { Products } from "./_products.ts";
import { PROFILE, Profiler } from "./_profile.ts";
import type { Region } from "./_region.ts";
import { CHUNK_BYTES, share } from "./_schedule.ts";

type Seg = Segment<Float32Array>;

/** The interface as this backend implements it. */
type O = Ops<Float32Array, Matrix>;

/** `ew` op codes of the activations. */
const ACT_OP: Record<Activation, number> = { tanh: 0, sigmoid: 1, relusq: 2 };

/** One team member's operations. */
export class WorkerOps implements Ops<Float32Array, Matrix> {
  readonly #k: Kernels;
  readonly #ctrl: Int32Array;
  readonly #id: number;
  readonly #n: number;
  readonly #shared: Region;
  readonly #private: Region;
  readonly #sharedBuffers: Set<number>;
  #made = 0;
  readonly #products: Products;
  readonly #prof: Profiler;
  /** The plain TypeScript of the steps no kernel covers (widths not a multiple of 4). */
  readonly #ts = new ReferenceOps();

  /**
   * `kernels`: the kernels over the team's memory, or one instance for each memory of the
   * arena ({@link Arena.memories}; the first's also runs everything but the products' rows);
   * `sharedBuffers`: the indices (in creation order) of the buffers the team shares;
   * `scratchBytes`: this member's product scratch, from `productScratchBytes`;
   * `profile`: where to add up milliseconds by {@link PROFILE} kind (this member's row);
   * `chunkBytes`: weight bytes of the row chunks members claim (`CHUNK_BYTES`);
   * `decodeScratchBytes`: the scratch of one product's input for one token (each of a
   * decoding group's products gets one, `GROUP_MAX` in all).
   */
  constructor(
    kernels: Kernels | readonly Kernels[],
    ctrl: Int32Array,
    id: number,
    n: number,
    shared: Region,
    priv: Region,
    sharedBuffers: readonly number[],
    scratchBytes: number,
    profile?: Float64Array,
    chunkBytes = CHUNK_BYTES,
    decodeScratchBytes = scratchBytes,
  ) {
    this.#prof = new Profiler(profile, id);
    const byMemory = Array.isArray(kernels) ? kernels : [kernels as Kernels];
    this.#k = byMemory[0];
    this.#ctrl = ctrl;
    this.#id = id;
    this.#n = n;
    this.#shared = shared;
    this.#private = priv;
    this.#sharedBuffers = new Set(sharedBuffers);
    this.#products = new Products(
      byMemory,
      ctrl,
      id,
      n,
      priv,
      scratchBytes,
      this.#prof,
      () => this.#meet(),
      chunkBytes,
      decodeScratchBytes,
    );
    // the per-token steps, timed only when profiling (no cost otherwise)
    this.#prof.timeSteps(this);
  }

  /** The team meets (the wait counted when profiling). */
  #meet(): void {
    const t0 = this.#prof.now();
    barrier(this.#ctrl, this.#n);
    this.#prof.took(PROFILE.barrier, t0);
  }

  buffer(n: number): Float32Array {
    const shared = this.#sharedBuffers.has(this.#made++);
    return (shared ? this.#shared : this.#private).f32(n);
  }

  embed(emb: Matrix, tokens: ArrayLike<number>, out: Float32Array): void {
    const C = emb.cols, t0 = this.#prof.now();
    for (let t = 0; t < tokens.length; t++) {
      decodeRowGrouped(emb, tokens[t], out.subarray(t * C, (t + 1) * C));
    }
    this.#prof.took(PROFILE.embed, t0);
  }

  /**
   * The hot function: this member's rows of `y = m · x` for T tokens, then the barrier (all
   * of y is written when anyone returns).
   */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    this.#products.one(m, x, y, T, 0);
    this.#meet();
  }

  /**
   * This member's rows of each product in turn, then one barrier; with `heads`, the rows of
   * this member's heads of the time mix that reads them next (as `v7TimeMix` splits them: all
   * of them in member 0 when it runs the time mix alone) and no barrier: each member reads only
   * what it wrote.
   */
  matmuls(
    products: Product<Float32Array, Matrix>[],
    T: number,
    heads?: { H: number; N: number },
  ): void {
    if (heads) {
      const { H, N } = heads;
      const [h0, h1] = this.#timeMixHeads(H, N);
      if (h1 > h0) this.#products.rowsOf(products, T, h0 * N, h1 * N);
      return;
    }
    this.#products.many(products, T);
    this.#meet();
  }

  /** A new forward pass: the claim counters start again from 0 (the pool resets them). */
  startPass(): void {
    this.#products.startPass();
  }

  // The element-wise steps: every vector lives in the shared memory, so the kernels take
  // byte offsets; shapes the kernels do not cover (N or A not a multiple of 4) run the
  // reference backend's TypeScript.
  norm(...a: Parameters<O["norm"]>): void {
    const [x, w, b, out, n, groups, wrap, eps] = a;
    if (n % 4) return this.#ts.norm(...a);
    this.#k.norm(x.byteOffset, w.byteOffset, b.byteOffset, out.byteOffset, n, groups, wrap, eps);
  }

  shift(...a: Parameters<O["shift"]>): void {
    const [cur, segs, slot, mix, out, C, form] = a;
    if (C % 4) return this.#ts.shift(...a);
    const k = this.#k, f = form === "toCur" ? 1 : form === "diff" ? 2 : 0;
    for (const s of segs) {
      const o = s.start * C * 4;
      k.shift(
        cur.byteOffset + o,
        s.state[slot].byteOffset,
        mix.byteOffset,
        out.byteOffset + o,
        C,
        s.length,
        f,
      );
    }
  }

  keepLast(...a: Parameters<O["keepLast"]>): void {
    this.#ts.keepLast(...a);
  }

  lastRows(...a: Parameters<O["lastRows"]>): void {
    this.#ts.lastRows(...a);
  }

  columns(...a: Parameters<O["columns"]>): void {
    this.#ts.columns(...a);
  }

  tmix(...a: Parameters<O["tmix"]>): void {
    const [op, x, dx, base, off, out, T, C] = a;
    if (C % 4) return this.#ts.tmix(...a);
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

  /**
   * RWKV-4's recurrence: each member its run of channels (whole groups of four) of the shared
   * state, then one barrier (it was computed alike by every member on its own state copy: the
   * same arithmetic in each, a few percent of a token on two Workers).
   */
  wkv4(a: Wkv4Args<Float32Array>, segs: readonly Seg[]): void {
    const A = a.A, t0 = this.#prof.now();
    if (A % 4) {
      // a width no kernel covers: member 0 runs the TS alone (the state and out are shared)
      if (this.#id === 0) this.#ts.wkv4(a, segs);
    } else {
      // runs of whole 16-channel groups (64 bytes: no two members write one cache line)
      const [g0, g1] = share(Math.ceil(A / 16), this.#id, this.#n);
      const c0 = Math.min(A, g0 * 16), n = Math.min(A, g1 * 16) - c0;
      for (const s of segs) {
        if (n <= 0) break;
        const o = (s.start * A + c0) * 4, c = c0 * 4;
        const [aa, bb, pp] = [s.state[a.aa], s.state[a.bb], s.state[a.pp]];
        this.#k.wkv4(
          a.r.byteOffset + o,
          a.k.byteOffset + o,
          a.v.byteOffset + o,
          a.first.byteOffset + c,
          a.decay.byteOffset + c,
          aa.byteOffset + c,
          bb.byteOffset + c,
          pp.byteOffset + c,
          a.out.byteOffset + o,
          n,
          s.length,
          A,
        );
      }
    }
    this.#prof.took(PROFILE.recurrence, t0);
    this.#meet();
  }

  /**
   * The heads [h0, h1) of RWKV-7's time mix this member runs: all of them in member 0 when the
   * head size has no kernel (N not a multiple of 4: the TypeScript path), else its share.
   */
  #timeMixHeads(H: number, N: number): [number, number] {
    return N % 4 ? (this.#id === 0 ? [0, H] : [0, 0]) : share(H, this.#id, this.#n);
  }

  /** This member's heads of the time mix, each segment in turn; then one barrier. */
  v7TimeMix(a: V7TimeMixArgs<Float32Array>, segs: readonly Seg[]): void {
    const { H, N } = a, C = H * N, t0 = this.#prof.now();
    if (N % 4) {
      // a head size no kernel covers: member 0 runs the TS alone (out is shared)
      if (this.#id === 0) this.#ts.v7TimeMix(a, segs);
      this.#prof.took(PROFILE.recurrence, t0);
      this.#meet();
      return;
    }
    const [h0, h1] = this.#timeMixHeads(H, N), n = h1 - h0, k = this.#k;
    for (const s of segs) {
      if (n <= 0) break;
      const T = s.length, S = s.state[a.S];
      // every vector advanced to this member's first head (and per-token ones to the
      // segment's first token); the state by whole heads
      const o = (x: Float32Array) => x.byteOffset + h0 * N * 4;
      const t = (x: Float32Array) => x.byteOffset + (s.start * C + h0 * N) * 4;
      k.v7_gates(
        o(a.a0),
        t(a.al),
        o(a.w0),
        t(a.wl),
        a.v0 ? o(a.v0) : 0,
        t(a.vl),
        t(a.v),
        t(a.vFirst),
        o(a.kkW),
        o(a.ka),
        t(a.k),
        t(a.wDecay),
        t(a.vMix),
        t(a.kkN),
        t(a.kkA),
        t(a.kMod),
        n,
        N,
        T,
        C,
      );
      k.wkv7(
        S.byteOffset + h0 * N * N * 4,
        t(a.r),
        t(a.wDecay),
        t(a.kMod),
        t(a.vMix),
        t(a.kkN),
        t(a.kkA),
        t(a.y),
        n,
        N,
        T,
        C,
      );
      k.v7_out(
        t(a.y),
        t(a.out),
        o(a.lnw),
        o(a.lnb),
        t(a.r),
        t(a.kMod),
        o(a.rk),
        t(a.vMix),
        t(a.g),
        n,
        N,
        T,
        C,
        64e-5,
      );
    }
    this.#prof.took(PROFILE.recurrence, t0);
    this.#meet();
  }

  /** As wkv7, for RWKV-5/6. */
  wkv5(...a: Parameters<O["wkv5"]>): void {
    const [slot, r, k, v, w, u, y, H, N, segs, decayPerToken] = a;
    const A = H * N, t0 = this.#prof.now();
    if (N % 4) {
      if (this.#id === 0) this.#ts.wkv5(...a);
    } else {
      const [h0, h1] = share(H, this.#id, this.#n), o = h0 * N * 4;
      for (const s of segs) {
        if (h1 <= h0) break;
        const t = s.start * A * 4;
        this.#k.wkv5(
          s.state[slot].byteOffset + o * N,
          r.byteOffset + t + o,
          k.byteOffset + t + o,
          v.byteOffset + t + o,
          w.byteOffset + (decayPerToken ? t : 0) + o,
          u.byteOffset + o,
          y.byteOffset + t + o,
          h1 - h0,
          N,
          s.length,
          A,
          decayPerToken ? A : 0,
        );
      }
    }
    this.#prof.took(PROFILE.recurrence, t0);
    this.#meet();
  }
}
