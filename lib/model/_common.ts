/**
 * Pieces shared by the RWKV-4/5/6 modules: the channel mix (FFN), the head, the embedding and the
 * checks of the tensors every block has.
 * @module
 */

import type { MatrixShape, Ops, Segment, WeightSource } from "./ops.ts";

/** The channel mix of RWKV-4/5/6: `x += σ(R·rx) ⊙ (V·relu(K·kx)²)`. */
export class ChannelMix<B, M extends MatrixShape> {
  readonly #c: Ops<B, M>;
  readonly #C: number;
  readonly #F: number;
  readonly #xn: B; // ln2 output (T, C)
  readonly #kx: B; // token-shifted inputs (T, C)
  readonly #rx: B;
  readonly #k: B; // K·kx (T, F)
  readonly #hid: B; // relu² of it (T, F)
  readonly #r: B; // R·rx (T, C)
  readonly #v: B; // V·hid (T, C)

  constructor(c: Ops<B, M>, C: number, F: number, maxT: number) {
    this.#c = c;
    this.#C = C;
    this.#F = F;
    this.#xn = c.buffer(maxT * C);
    this.#kx = c.buffer(maxT * C);
    this.#rx = c.buffer(maxT * C);
    this.#k = c.buffer(maxT * F);
    this.#hid = c.buffer(maxT * F);
    this.#r = c.buffer(maxT * C);
    this.#v = c.buffer(maxT * C);
  }

  /**
   * Applies block `i`'s channel mix to `x` (T × C) in place; state tensor `slot` of each
   * segment is its ffn x_prev. `v6` selects RWKV-6's mixing (`xx + (prev − xx)·maa`) and names
   * (`time_maa_*`).
   */
  run(
    w: WeightSource<B, M>,
    i: number,
    x: B,
    segs: readonly Segment<B>[],
    slot: number,
    T: number,
    v6: boolean,
  ): void {
    const C = this.#C, F = this.#F, c = this.#c, xn = this.#xn;
    const f = `blocks.${i}.ffn.`;
    c.norm(x, w.vec(`blocks.${i}.ln2.weight`), w.vec(`blocks.${i}.ln2.bias`), xn, C, T, 1, 1e-5);
    const mk = w.vec(f + (v6 ? "time_maa_k" : "time_mix_k"));
    const mr = w.vec(f + (v6 ? "time_maa_r" : "time_mix_r"));
    // RWKV-6 writes the mix as xx + (prev − xx)·maa, i.e. a mix weight of (1 − maa).
    c.shift(xn, segs, slot, mk, this.#kx, C, v6 ? "toPrev" : "toCur");
    c.shift(xn, segs, slot, mr, this.#rx, C, v6 ? "toPrev" : "toCur");
    c.keepLast(xn, segs, slot, C);
    c.matmuls([
      [w.mat(f + "receptance.weight"), this.#rx, this.#r],
      [w.mat(f + "key.weight"), this.#kx, this.#k],
    ], T);
    c.act("relusq", this.#k, this.#hid, T * F);
    c.matmul(w.mat(f + "value.weight"), this.#hid, this.#v, T);
    c.sigmoidMulAdd(this.#r, this.#v, x, T * C);
  }
}

/**
 * Final layer norm and head: logits after each segment's last token (one row per segment), or
 * after every token.
 */
export class Head<B, M extends MatrixShape> {
  readonly #c: Ops<B, M>;
  readonly #C: number;
  readonly #last: B; // the segments' last rows (segments ≤ T, C)
  readonly #xn: B; // ln_out output (T, C)
  readonly #logits: B; // (T, vocab)

  constructor(c: Ops<B, M>, C: number, vocab: number, maxT: number) {
    this.#c = c;
    this.#C = C;
    this.#last = c.buffer(maxT * C);
    this.#xn = c.buffer(maxT * C);
    this.#logits = c.buffer(maxT * vocab);
  }

  run(w: WeightSource<B, M>, x: B, segs: readonly Segment<B>[], T: number, every: boolean): B {
    const c = this.#c, C = this.#C;
    let rows = T, src = x;
    if (!every) {
      c.lastRows(x, segs, this.#last, C);
      rows = segs.length;
      src = this.#last;
    }
    c.norm(src, w.vec("ln_out.weight"), w.vec("ln_out.bias"), this.#xn, C, rows, 1, 1e-5);
    c.matmul(w.mat("head.weight"), this.#xn, this.#logits, rows);
    return this.#logits;
  }
}

/**
 * Checks the tensors every RWKV-4/5/6 block has, with their shapes, so a mis-shaped or missing
 * tensor is reported by name at load instead of computing garbage.
 */
export function checkCommon<B, M extends MatrixShape>(
  w: WeightSource<B, M>,
  extraAtt: string[],
  mixNames: string[],
): void {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab } = w.spec;
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
