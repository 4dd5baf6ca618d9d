/**
 * RWKV-5 (5.0 without gate, 5.1 with gate, 5.2 with per-channel decay), following the official
 * package (`att_one_v5`, `att_one_v5_1`, `att_seq_v5_2`). The decay `w = exp(−exp(time_decay))`
 * and bonus `u` (`exp(time_first)`, or `time_faaaa` as is) are prepared at load, one per channel.
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) as [head][key][value],
 * ffn x_prev (C)]`.
 * @module
 */

import type { MatrixShape, Ops, Product, Runner, Segment, WeightSource } from "./ops.ts";
import { ChannelMix, checkCommon, Head } from "./_common.ts";

/** Binds RWKV-5 weights and buffers for up to `maxT` tokens per pass. */
export function createRunnerV5<B, M extends MatrixShape>(
  w: WeightSource<B, M>,
  c: Ops<B, M>,
  maxT: number,
): Runner<B> {
  const spec = w.spec;
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
  const x = c.buffer(maxT * C), xn = c.buffer(maxT * C); // residual stream, ln1 output (T, C)
  const kx = c.buffer(maxT * C), vx = c.buffer(maxT * C); // token-shifted inputs (T, C)
  const rx = c.buffer(maxT * C), gx = c.buffer(maxT * C);
  const r = c.buffer(maxT * A), k = c.buffer(maxT * A), v = c.buffer(maxT * A); // (T, A)
  const g = c.buffer(maxT * A); // gate (T, A)
  const y = c.buffer(maxT * A); // the recurrence's output (T, A)
  const yn = c.buffer(maxT * A); // y normalised and gated (T, A)
  const out = c.buffer(maxT * C); // attention output (T, C)
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);

  function forward(tokens: ArrayLike<number>, segs: readonly Segment<B>[], every: boolean): B {
    const T = tokens.length;
    c.embed(w.mat("emb.weight"), tokens, x);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`, s = i * 3; // state: att x_prev, wkv, ffn x_prev
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      // token shift: each token mixed with the previous one (the state's for the first)
      c.shift(xn, segs, s, w.vec(a + "time_mix_k"), kx, C, "toCur");
      c.shift(xn, segs, s, w.vec(a + "time_mix_v"), vx, C, "toCur");
      c.shift(xn, segs, s, w.vec(a + "time_mix_r"), rx, C, "toCur");
      if (gated) c.shift(xn, segs, s, w.vec(a + "time_mix_g"), gx, C, "toCur");
      c.keepLast(xn, segs, s, C);
      const products: Product<B, M>[] = [
        [w.mat(a + "receptance.weight"), rx, r],
        [w.mat(a + "key.weight"), kx, k],
        [w.mat(a + "value.weight"), vx, v],
      ];
      if (gated) products.push([w.mat(a + "gate.weight"), gx, g]);
      c.matmuls(products, T);
      // the recurrence per head, decay w = exp(−exp(time_decay)) and bonus u prepared at load
      const decay = w.vec(a + "time_decay");
      const u = w.has(a + "time_first") ? w.vec(a + "time_first") : w.vec(a + "time_faaaa");
      c.wkv5(s + 1, r, k, v, decay, u, y, H, N, segs, false);
      c.norm(y, w.vec(a + "ln_x.weight"), w.vec(a + "ln_x.bias"), yn, A / H, T * H, H, 64e-5);
      if (gated) c.siluMul(g, yn, T * A); // silu gate
      c.matmul(w.mat(a + "output.weight"), yn, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, segs, s + 2, T, false);
    }
    return head.run(w, x, segs, T, every);
  }
  return { maxT, forward };
}
