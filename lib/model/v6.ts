/**
 * RWKV-6 ("Finch"), following the official package (`att_one_v6_0`, `ffn_one_v6`): token shift
 * with data-dependent mixing (a low-rank `time_maa_w1/w2`) and data-dependent decay
 * (`time_decay_w1/w2`), `w = exp(−exp(time_decay + Δ))` per token.
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) as [head][key][value],
 * ffn x_prev (C)]`.
 * @module
 */

import type { MatrixShape, Ops, Product, Runner, Segment, WeightSource } from "./ops.ts";
import { ChannelMix, checkCommon, Head } from "./_common.ts";

/** Binds RWKV-6 weights and buffers for up to `maxT` tokens per pass. */
export function createRunnerV6<B, M extends MatrixShape>(
  w: WeightSource<B, M>,
  c: Ops<B, M>,
  maxT: number,
): Runner<B> {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab, heads: H, headSize: N } = w.spec;
  const D = w.mat("blocks.0.att.time_maa_w2.0").cols; // mix rank
  const Dd = w.mat("blocks.0.att.time_decay_w1").rows; // decay rank
  checkCommon(w, ["gate"], ["time_maa_k", "time_maa_r"]);
  for (let i = 0; i < layers; i++) {
    const a = `blocks.${i}.att.`;
    for (const n of ["x", "w", "k", "v", "r", "g"]) w.vec(a + "time_maa_" + n, C);
    w.mat(a + "time_maa_w1", 5 * D, C);
    for (let p = 0; p < 5; p++) w.mat(`${a}time_maa_w2.${p}`, C, D);
    w.mat(a + "time_decay_w1", Dd, C);
    w.mat(a + "time_decay_w2", A, Dd);
    for (const n of ["time_decay", "time_faaaa", "ln_x.weight", "ln_x.bias"]) w.vec(a + n, A);
  }
  const x = c.buffer(maxT * C), xn = c.buffer(maxT * C); // residual stream, ln1 output (T, C)
  const dx = c.buffer(maxT * C), xxx = c.buffer(maxT * C); // prev − cur, xx + dx·maa_x (T, C)
  const mixHidS = c.buffer(maxT * 5 * D); // xxx·W1 (T, 5D)
  const mixHid = c.buffer(maxT * 5 * D); // tanh of it (T, 5D)
  const part = Array.from({ length: 5 }, () => c.buffer(maxT * D)); // its fifths (T, D)
  const m = Array.from({ length: 5 }, () => c.buffer(maxT * C)); // offsets mw mk mv mr mg (T, C)
  const mixed = Array.from({ length: 5 }, () => c.buffer(maxT * C)); // wx kx vx rx gx (T, C)
  const r = c.buffer(maxT * A), k = c.buffer(maxT * A), v = c.buffer(maxT * A); // (T, A)
  const g = c.buffer(maxT * A); // gate (T, A)
  const decHidS = c.buffer(maxT * Dd), decHid = c.buffer(maxT * Dd); // wx·Wd1, tanh (T, Dd)
  const dec = c.buffer(maxT * A); // ·Wd2 (T, A)
  const decay = c.buffer(maxT * A); // exp(−exp(time_decay + dec)) (T, A)
  const y = c.buffer(maxT * A); // the recurrence's output (T, A)
  const yn = c.buffer(maxT * A); // y normalised and gated (T, A)
  const out = c.buffer(maxT * C); // attention output (T, C)
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);
  const names = ["w", "k", "v", "r", "g"];

  function forward(tokens: ArrayLike<number>, segs: readonly Segment<B>[], every: boolean): B {
    const T = tokens.length;
    c.embed(w.mat("emb.weight"), tokens, x);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`, s = i * 3; // state: att x_prev, wkv, ffn x_prev
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      // dx = previous token − this token; xxx = xx + dx·maa_x
      const maaX = w.vec(a + "time_maa_x");
      c.shift(xn, segs, s, maaX, dx, C, "diff");
      c.shift(xn, segs, s, maaX, xxx, C, "toPrev");
      c.keepLast(xn, segs, s, C);
      // five data-dependent mix offsets: tanh(xxx·W1) split in 5, each · W2[p]
      c.matmul(w.mat(a + "time_maa_w1"), xxx, mixHidS, T);
      c.act("tanh", mixHidS, mixHid, T * 5 * D);
      const offsets: Product<B, M>[] = [];
      for (let p = 0; p < 5; p++) {
        c.columns(mixHid, 5 * D, p * D, D, part[p], T);
        offsets.push([w.mat(`${a}time_maa_w2.${p}`), part[p], m[p]]);
      }
      c.matmuls(offsets, T);
      for (let p = 0; p < 5; p++) {
        c.tmix("lerp", xn, dx, w.vec(a + "time_maa_" + names[p]), m[p], mixed[p], T, C);
      }
      const [wx, kx, vx, rx, gx] = mixed;
      // the products of the mixed inputs, and the first half of the data-dependent decay
      // exp(−exp(time_decay + tanh(wx·Wd1)·Wd2))
      c.matmuls([
        [w.mat(a + "receptance.weight"), rx, r],
        [w.mat(a + "key.weight"), kx, k],
        [w.mat(a + "value.weight"), vx, v],
        [w.mat(a + "gate.weight"), gx, g],
        [w.mat(a + "time_decay_w1"), wx, decHidS],
      ], T);
      c.act("tanh", decHidS, decHid, T * Dd);
      c.matmul(w.mat(a + "time_decay_w2"), decHid, dec, T);
      c.tmix("decay", dec, dec, w.vec(a + "time_decay"), dec, decay, T, A);
      // the recurrence per head, with this token's decay
      c.wkv5(s + 1, r, k, v, decay, w.vec(a + "time_faaaa"), y, H, N, segs, true);
      c.norm(y, w.vec(a + "ln_x.weight"), w.vec(a + "ln_x.bias"), yn, A / H, T * H, H, 64e-5);
      c.siluMul(g, yn, T * A); // silu gate
      c.matmul(w.mat(a + "output.weight"), yn, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, segs, s + 2, T, true);
    }
    return head.run(w, x, segs, T, every);
  }
  return { maxT, forward };
}
