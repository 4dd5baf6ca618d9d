/**
 * RWKV-5 (5.0 without gate, 5.1 with gate, 5.2 with per-channel decay), following the official
 * package (`att_one_v5`, `att_one_v5_1`, `att_seq_v5_2`). The decay `w = exp(−exp(time_decay))`
 * and bonus `u` (`exp(time_first)`, or `time_faaaa` as is) are prepared at load, one per channel.
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) as [head][key][value],
 * ffn x_prev (C)]`.
 * @module
 */

import { ChannelMix, checkCommon, embed, Head } from "./_common.ts";
import type { Compute, Product } from "./ops.ts";
import type { Runner } from "./runner.ts";
import type { Weights } from "./weights.ts";

/** Binds RWKV-5 weights and buffers for up to `maxT` tokens per call. */
export function createRunnerV5(w: Weights, c: Compute, maxT: number): Runner {
  const spec = w.layout.spec;
  const { layers, embd: C, attDim: A, ffnDim: F, vocab, heads: H, headSize: N } = spec;
  const gated = spec.version !== "5.0";
  checkCommon(w, gated ? ["gate"] : [], ["time_mix_k", "time_mix_r"]);
  for (let i = 0; i < layers; i++) {
    const a = `blocks.${i}.att.`;
    w.vec(a + "time_decay", A);
    w.vec(a + (w.has(a + "time_first") ? "time_first" : "time_faaaa"), A);
    for (const n of ["ln_x.weight", "ln_x.bias"]) w.vec(a + n, A);
    for (const n of ["k", "v", "r", ...(gated ? ["g"] : [])]) w.vec(a + "time_mix_" + n, C);
  }
  const x = c.buffer(maxT * C, false), xn = c.buffer(maxT * C, false);
  const kx = c.buffer(maxT * C, false), vx = c.buffer(maxT * C, false);
  const rx = c.buffer(maxT * C, false), gx = c.buffer(maxT * C, false);
  const y = c.buffer(maxT * A, true); // the recurrence's output, written by heads
  const yn = c.buffer(maxT * A, false); // y normalised and gated
  const r = c.buffer(maxT * A, true), k = c.buffer(maxT * A, true), v = c.buffer(maxT * A, true);
  const g = c.buffer(maxT * A, true), out = c.buffer(maxT * C, true);
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);

  function forward(tokens: ArrayLike<number>, state: Float32Array[], every: boolean) {
    const T = tokens.length;
    embed(c, w, tokens, x, C);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`;
      const [prev, s, ffnPrev] = state.slice(i * 3, i * 3 + 3);
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      c.shift(xn, prev, w.vec(a + "time_mix_k"), kx, T, C, "toCur");
      c.shift(xn, prev, w.vec(a + "time_mix_v"), vx, T, C, "toCur");
      c.shift(xn, prev, w.vec(a + "time_mix_r"), rx, T, C, "toCur");
      if (gated) c.shift(xn, prev, w.vec(a + "time_mix_g"), gx, T, C, "toCur");
      prev.set(xn.subarray((T - 1) * C, T * C));
      const products: Product[] = [
        [w.mat(a + "receptance.weight"), rx, r],
        [w.mat(a + "key.weight"), kx, k],
        [w.mat(a + "value.weight"), vx, v],
      ];
      if (gated) products.push([w.mat(a + "gate.weight"), gx, g]);
      c.matmuls(products, T);
      const decay = w.vec(a + "time_decay");
      const u = w.has(a + "time_first") ? w.vec(a + "time_first") : w.vec(a + "time_faaaa");
      c.wkv5(s, r, k, v, decay, u, y, H, N, T, false);
      c.norm(y, w.vec(a + "ln_x.weight"), w.vec(a + "ln_x.bias"), yn, A / H, T * H, H, 64e-5);
      if (gated) {
        c.siluMul(g, yn, T * A); // silu gate
      }
      c.matmul(w.mat(a + "output.weight"), yn, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, ffnPrev, T, false);
    }
    return head.run(w, x, T, every);
  }
  return { maxT, forward };
}
