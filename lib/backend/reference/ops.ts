/**
 * The reference backend's {@link Ops}: every operation in plain TypeScript (`math.ts`) on one
 * thread, over row-major weights.
 * @module
 */

import {
  actTS,
  addTS,
  columnsTS,
  decodeRow,
  keepLastTS,
  lastRowsTS,
  matmulRowsTS,
  normTS,
  shiftTS,
  sigmoidMulAddTS,
  siluMulTS,
  tmixTS,
  v7TimeMixTS,
  wkv4TS,
  wkv5TS,
} from "./math.ts";
import type { Matrix } from "../../model/tensor.ts";
import type { Ops, Product, Segment, ShiftForm, V7TimeMixArgs, Wkv4Args } from "../../model/ops.ts";

/** Rows [start, start + length) of a (T × width) buffer. */
function rows(b: Float32Array, s: Segment<Float32Array>, width: number): Float32Array {
  return b.subarray(s.start * width, (s.start + s.length) * width);
}

/**
 * {@link Ops} in plain TypeScript over Float32Arrays; segments are run one after another.
 * @example
 * ```ts
 * import { createRunner } from "../../model/model.ts";
 * import type { WeightSource } from "../../model/ops.ts";
 * import type { Matrix } from "../../model/tensor.ts";
 * declare const weights: WeightSource<Float32Array, Matrix>;
 * const runner = createRunner(weights, new ReferenceOps(), 64, "model.pth");
 * ```
 */
export class ReferenceOps implements Ops<Float32Array, Matrix> {
  #scratch = new Float32Array(0);

  buffer(n: number): Float32Array {
    return new Float32Array(n);
  }

  embed(emb: Matrix, tokens: ArrayLike<number>, out: Float32Array): void {
    const C = emb.cols;
    for (let t = 0; t < tokens.length; t++) {
      decodeRow(emb, tokens[t], out.subarray(t * C, (t + 1) * C));
    }
  }

  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    if (this.#scratch.length < m.cols) this.#scratch = new Float32Array(m.cols);
    matmulRowsTS(m, x, y, T, 0, m.rows, this.#scratch);
  }

  matmuls(products: Product<Float32Array, Matrix>[], T: number): void {
    for (const [m, x, y] of products) this.matmul(m, x, y, T);
  }

  /** See `Ops.norm`. */
  norm(...a: Parameters<Ops<Float32Array, Matrix>["norm"]>): void {
    normTS(...a);
  }

  /** See `Ops.act`. */
  act(...a: Parameters<Ops<Float32Array, Matrix>["act"]>): void {
    actTS(...a);
  }

  /** See `Ops.tmix`. */
  tmix(...a: Parameters<Ops<Float32Array, Matrix>["tmix"]>): void {
    tmixTS(...a);
  }

  /** See `Ops.add`. */
  add(...a: Parameters<Ops<Float32Array, Matrix>["add"]>): void {
    addTS(...a);
  }

  /** See `Ops.sigmoidMulAdd`. */
  sigmoidMulAdd(...a: Parameters<Ops<Float32Array, Matrix>["sigmoidMulAdd"]>): void {
    sigmoidMulAddTS(...a);
  }

  /** See `Ops.siluMul`. */
  siluMul(...a: Parameters<Ops<Float32Array, Matrix>["siluMul"]>): void {
    siluMulTS(...a);
  }

  shift(
    cur: Float32Array,
    segs: readonly Segment<Float32Array>[],
    slot: number,
    mix: Float32Array,
    out: Float32Array,
    C: number,
    form: ShiftForm,
  ): void {
    for (const s of segs) {
      shiftTS(rows(cur, s, C), s.state[slot], mix, rows(out, s, C), s.length, C, form);
    }
  }

  keepLast(...a: Parameters<Ops<Float32Array, Matrix>["keepLast"]>): void {
    keepLastTS(...a);
  }

  columns(...a: Parameters<Ops<Float32Array, Matrix>["columns"]>): void {
    columnsTS(...a);
  }

  wkv4(a: Wkv4Args<Float32Array>, segs: readonly Segment<Float32Array>[]): void {
    const A = a.A;
    for (const s of segs) {
      wkv4TS({
        T: s.length,
        A,
        r: rows(a.r, s, A),
        k: rows(a.k, s, A),
        v: rows(a.v, s, A),
        first: a.first,
        decay: a.decay,
        aa: s.state[a.aa],
        bb: s.state[a.bb],
        pp: s.state[a.pp],
        out: rows(a.out, s, A),
      });
    }
  }

  wkv5(...a: Parameters<Ops<Float32Array, Matrix>["wkv5"]>): void {
    const [slot, r, k, v, w, u, y, H, N, segs, decayPerToken] = a;
    const A = H * N;
    for (const s of segs) {
      const ws = decayPerToken ? rows(w, s, A) : w;
      const at = (b: Float32Array) => rows(b, s, A);
      wkv5TS(s.state[slot], at(r), at(k), at(v), ws, u, at(y), H, N, s.length, decayPerToken);
    }
  }

  v7TimeMix(a: V7TimeMixArgs<Float32Array>, segs: readonly Segment<Float32Array>[]): void {
    const C = a.H * a.N;
    for (const s of segs) {
      const at = (b: Float32Array) => rows(b, s, C);
      v7TimeMixTS({
        T: s.length,
        H: a.H,
        N: a.N,
        a0: a.a0,
        al: at(a.al),
        w0: a.w0,
        wl: at(a.wl),
        v0: a.v0,
        vl: at(a.vl),
        v: at(a.v),
        vFirst: at(a.vFirst),
        kkW: a.kkW,
        ka: a.ka,
        k: at(a.k),
        wDecay: at(a.wDecay),
        vMix: at(a.vMix),
        kkN: at(a.kkN),
        kkA: at(a.kkA),
        kMod: at(a.kMod),
        S: s.state[a.S],
        r: at(a.r),
        y: at(a.y),
        lnw: a.lnw,
        lnb: a.lnb,
        rk: a.rk,
        g: at(a.g),
        out: at(a.out),
      });
    }
  }

  lastRows(...a: Parameters<Ops<Float32Array, Matrix>["lastRows"]>): void {
    lastRowsTS(...a);
  }
}
