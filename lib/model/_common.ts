/**
 * Pieces shared by the RWKV-4/5/6 modules: the token shift and the channel mix (FFN).
 * @module
 */

import type { Compute } from "./ops.ts";
import type { Matrix } from "./tensor.ts";
import type { Weights } from "./weights.ts";

/** The channel mix of RWKV-4/5/6: `x += σ(R·rx) ⊙ (V·relu(K·kx)²)`. */
export class ChannelMix {
  readonly #c: Compute;
  readonly #C: number;
  readonly #F: number;
  readonly #xn: Float32Array;
  readonly #kx: Float32Array;
  readonly #rx: Float32Array;
  readonly #hid: Float32Array;
  readonly #k: Float32Array; // shared
  readonly #r: Float32Array; // shared
  readonly #v: Float32Array; // shared

  constructor(c: Compute, C: number, F: number, maxT: number) {
    this.#c = c;
    this.#C = C;
    this.#F = F;
    this.#xn = c.buffer(maxT * C, false);
    this.#kx = c.buffer(maxT * C, false);
    this.#rx = c.buffer(maxT * C, false);
    this.#hid = c.buffer(maxT * F, false);
    this.#k = c.buffer(maxT * F, true);
    this.#r = c.buffer(maxT * C, true);
    this.#v = c.buffer(maxT * C, true);
  }

  /**
   * Applies block `i`'s channel mix to `x` (T × C) in place and updates `prev` (ffn x_prev).
   * `v6` selects RWKV-6's mixing (`xx + (prev − xx)·maa`) and names (`time_maa_*`).
   */
  run(w: Weights, i: number, x: Float32Array, prev: Float32Array, T: number, v6: boolean): void {
    const C = this.#C, F = this.#F, c = this.#c, xn = this.#xn;
    const f = `blocks.${i}.ffn.`;
    const K: Matrix = w.mat(f + "key.weight"), V = w.mat(f + "value.weight");
    const R = w.mat(f + "receptance.weight");
    c.norm(x, w.vec(`blocks.${i}.ln2.weight`), w.vec(`blocks.${i}.ln2.bias`), xn, C, T, 1, 1e-5);
    const mk = w.vec(f + (v6 ? "time_maa_k" : "time_mix_k"));
    const mr = w.vec(f + (v6 ? "time_maa_r" : "time_mix_r"));
    // RWKV-6 writes the mix as xx + (prev − xx)·maa, i.e. a mix weight of (1 − maa).
    c.shift(xn, prev, mk, this.#kx, T, C, v6 ? "toPrev" : "toCur");
    c.shift(xn, prev, mr, this.#rx, T, C, v6 ? "toPrev" : "toCur");
    prev.set(xn.subarray((T - 1) * C, T * C));
    c.matmuls([[R, this.#rx, this.#r], [K, this.#kx, this.#k]], T);
    const k = this.#k, hid = this.#hid;
    c.act("relusq", k, hid, T * F);
    c.matmul(V, hid, this.#v, T);
    const r = this.#r, v = this.#v;
    c.sigmoidMulAdd(r, v, x, T * C);
  }
}

/** Final layer norm and head: logits of the last token, or of every token. */
export class Head {
  readonly #c: Compute;
  readonly #C: number;
  readonly #vocab: number;
  readonly #xn: Float32Array;
  readonly #logits: Float32Array; // shared

  constructor(c: Compute, C: number, vocab: number, maxT: number) {
    this.#c = c;
    this.#C = C;
    this.#vocab = vocab;
    this.#xn = c.buffer(maxT * C, false);
    this.#logits = c.buffer(maxT * vocab, true);
  }

  run(w: Weights, x: Float32Array, T: number, everyPosition: boolean): Float32Array {
    const C = this.#C, t0 = everyPosition ? 0 : T - 1, n = T - t0;
    const lw = w.vec("ln_out.weight"), lb = w.vec("ln_out.bias");
    const xn = this.#xn.subarray(t0 * C, T * C);
    this.#c.norm(x.subarray(t0 * C, T * C), lw, lb, xn, C, n, 1, 1e-5);
    this.#c.matmul(w.mat("head.weight"), xn, this.#logits, n);
    return this.#logits.subarray(0, n * this.#vocab);
  }
}

/**
 * Checks the tensors every RWKV-4/5/6 block has, with their shapes, so a mis-shaped or missing
 * tensor is reported by name at load instead of computing garbage.
 */
export function checkCommon(w: Weights, extraAtt: string[], mixNames: string[]): void {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab } = w.layout.spec;
  w.mat("emb.weight", vocab, C);
  w.mat("head.weight", vocab, C);
  w.vec("ln_out.weight", C);
  w.vec("ln_out.bias", C);
  for (let i = 0; i < layers; i++) {
    const b = `blocks.${i}.`, a = `${b}att.`, f = `${b}ffn.`;
    for (const n of ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]) w.vec(b + n, C);
    for (const n of ["key", "value", "receptance", ...extraAtt]) w.mat(`${a}${n}.weight`, A, C);
    w.mat(a + "output.weight", C, A);
    w.mat(f + "key.weight", F, C);
    w.mat(f + "value.weight", C, F);
    w.mat(f + "receptance.weight", C, C);
    for (const n of mixNames) w.vec(f + n, C);
  }
}

/** Looks up the (layer-normed) embedding rows of `tokens` into `x`. */
export function embed(
  c: Compute,
  w: Weights,
  tokens: ArrayLike<number>,
  x: Float32Array,
  C: number,
) {
  const emb = w.mat("emb.weight");
  for (let t = 0; t < tokens.length; t++) c.row(emb, tokens[t], x.subarray(t * C, (t + 1) * C));
}
