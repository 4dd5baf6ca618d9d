/**
 * RWKV-4, following the official package (`att_one`/`att_seq`, `ffn_one`/`ffn_seq`).
 *
 * State per layer, in official order: `[att x_prev (C), aa (A), bb (A), pp (A), ffn x_prev (C)]`:
 * the WKV numerator and denominator kept scaled by exp(−pp) so nothing overflows.
 * @module
 */

import { ChannelMix, checkCommon, embed, Head } from "./_common.ts";
import type { Compute } from "./ops.ts";
import type { Runner } from "./runner.ts";
import type { Weights } from "./weights.ts";

/** Binds RWKV-4 weights and buffers for up to `maxT` tokens per call. */
export function createRunnerV4(w: Weights, c: Compute, maxT: number): Runner {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab } = w.layout.spec;
  checkCommon(w, [], ["time_mix_k", "time_mix_r"]);
  for (let i = 0; i < layers; i++) {
    for (const n of ["time_mix_k", "time_mix_v", "time_mix_r"]) w.vec(`blocks.${i}.att.${n}`, C);
    for (const n of ["time_decay", "time_first"]) w.vec(`blocks.${i}.att.${n}`, A);
  }
  const x = c.buffer(maxT * C, false); // residual stream (T, C)
  const xn = c.buffer(maxT * C, false); // ln1 output (T, C)
  const kx = c.buffer(maxT * C, false), vx = c.buffer(maxT * C, false);
  const rx = c.buffer(maxT * C, false);
  const rwkv = c.buffer(maxT * A, false); // σ(r) ⊙ wkv (T, A)
  const r = c.buffer(maxT * A, true), k = c.buffer(maxT * A, true), v = c.buffer(maxT * A, true);
  const out = c.buffer(maxT * C, true);
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);

  function forward(tokens: ArrayLike<number>, state: Float32Array[], every: boolean) {
    const T = tokens.length;
    embed(c, w, tokens, x, C);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`;
      const [prev, aa, bb, pp, ffnPrev] = state.slice(i * 5, i * 5 + 5);
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      c.shift(xn, prev, w.vec(a + "time_mix_k"), kx, T, C, "toCur");
      c.shift(xn, prev, w.vec(a + "time_mix_v"), vx, T, C, "toCur");
      c.shift(xn, prev, w.vec(a + "time_mix_r"), rx, T, C, "toCur");
      prev.set(xn.subarray((T - 1) * C, T * C));
      c.matmuls([
        [w.mat(a + "receptance.weight"), rx, r],
        [w.mat(a + "key.weight"), kx, k],
        [w.mat(a + "value.weight"), vx, v],
      ], T);
      const decay = w.vec(a + "time_decay"), first = w.vec(a + "time_first"); // −e^decay, u
      c.wkv4({ T, A, r, k, v, first, decay, aa, bb, pp, out: rwkv });
      c.matmul(w.mat(a + "output.weight"), rwkv, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, ffnPrev, T, false);
    }
    return head.run(w, x, T, every);
  }
  return { maxT, forward };
}
