/**
 * RWKV-4, following the official package (`att_one`/`att_seq`, `ffn_one`/`ffn_seq`).
 *
 * State per layer, in official order: `[att x_prev (C), aa (A), bb (A), pp (A), ffn x_prev (C)]`:
 * the WKV numerator and denominator kept scaled by exp(−pp) so nothing overflows.
 * @module
 */

import type { MatrixShape, Ops, Runner, Segment, WeightSource } from "./ops.ts";
import { ChannelMix, checkCommon, Head } from "./_common.ts";

/** Binds RWKV-4 weights and buffers for up to `maxT` tokens per pass. */
export function createRunnerV4<B, M extends MatrixShape>(
  w: WeightSource<B, M>,
  c: Ops<B, M>,
  maxT: number,
): Runner<B> {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab } = w.spec;
  checkCommon(w, [], ["time_mix_k", "time_mix_r"]);
  for (let i = 0; i < layers; i++) {
    for (const n of ["time_mix_k", "time_mix_v", "time_mix_r"]) w.vec(`blocks.${i}.att.${n}`, C);
    for (const n of ["time_decay", "time_first"]) w.vec(`blocks.${i}.att.${n}`, A);
  }
  const x = c.buffer(maxT * C); // residual stream (T, C)
  const xn = c.buffer(maxT * C); // ln1 output (T, C)
  const kx = c.buffer(maxT * C), vx = c.buffer(maxT * C), rx = c.buffer(maxT * C); // shifted
  const r = c.buffer(maxT * A), k = c.buffer(maxT * A), v = c.buffer(maxT * A); // (T, A)
  const rwkv = c.buffer(maxT * A); // σ(r) ⊙ wkv (T, A)
  const out = c.buffer(maxT * C); // attention output (T, C)
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);

  function forward(tokens: ArrayLike<number>, segs: readonly Segment<B>[], every: boolean): B {
    const T = tokens.length;
    c.embed(w.mat("emb.weight"), tokens, x);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`, s = i * 5; // state: att x_prev, aa, bb, pp, ffn x_prev
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      // token shift: each token mixed with the previous one (the state's for the first)
      c.shift(xn, segs, s, w.vec(a + "time_mix_k"), kx, C, "toCur");
      c.shift(xn, segs, s, w.vec(a + "time_mix_v"), vx, C, "toCur");
      c.shift(xn, segs, s, w.vec(a + "time_mix_r"), rx, C, "toCur");
      c.keepLast(xn, segs, s, C);
      c.matmuls([
        [w.mat(a + "receptance.weight"), rx, r],
        [w.mat(a + "key.weight"), kx, k],
        [w.mat(a + "value.weight"), vx, v],
      ], T);
      // WKV with the max trick; decay is −e^time_decay (prepared at load), first is u
      const decay = w.vec(a + "time_decay"), first = w.vec(a + "time_first");
      c.wkv4({ A, r, k, v, first, decay, aa: s + 1, bb: s + 2, pp: s + 3, out: rwkv }, segs);
      c.matmul(w.mat(a + "output.weight"), rwkv, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, segs, s + 4, T, false);
    }
    return head.run(w, x, segs, T, every);
  }
  return { maxT, forward };
}
