/**
 * RWKV-6 ("Finch"), following the official package (`att_one_v6_0`, `ffn_one_v6`): token shift
 * with data-dependent mixing (a low-rank `time_maa_w1/w2`) and data-dependent decay
 * (`time_decay_w1/w2`), `w = exp(−exp(time_decay + Δ))` per token.
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) as [head][key][value],
 * ffn x_prev (C)]`.
 * @module
 */

import { ChannelMix, checkCommon, embed, Head } from "./_common.ts";
import type { Compute, Product } from "./ops.ts";
import type { Runner } from "./runner.ts";
import type { Weights } from "./weights.ts";

/** Binds RWKV-6 weights and buffers for up to `maxT` tokens per call. */
export function createRunnerV6(w: Weights, c: Compute, maxT: number): Runner {
  const { layers, embd: C, attDim: A, ffnDim: F, vocab, heads: H, headSize: N } = w.layout.spec;
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
  const x = c.buffer(maxT * C, false), xn = c.buffer(maxT * C, false);
  const dx = c.buffer(maxT * C, false), xxx = c.buffer(maxT * C, false);
  const mixHid = c.buffer(maxT * 5 * D, false);
  const part = Array.from({ length: 5 }, () => c.buffer(maxT * D, false)); // mixHid's fifths
  const mixed = Array.from({ length: 5 }, () => c.buffer(maxT * C, false)); // wx kx vx rx gx
  const decHid = c.buffer(maxT * Dd, false), decay = c.buffer(maxT * A, false);
  const y = c.buffer(maxT * A, true); // the recurrence's output, written by heads
  const yn = c.buffer(maxT * A, false); // y normalised and gated
  const mixHidS = c.buffer(maxT * 5 * D, true), decHidS = c.buffer(maxT * Dd, true);
  const m = Array.from({ length: 5 }, () => c.buffer(maxT * C, true)); // mw mk mv mr mg
  const dec = c.buffer(maxT * A, true);
  const r = c.buffer(maxT * A, true), k = c.buffer(maxT * A, true), v = c.buffer(maxT * A, true);
  const g = c.buffer(maxT * A, true), out = c.buffer(maxT * C, true);
  const ffn = new ChannelMix(c, C, F, maxT), head = new Head(c, C, vocab, maxT);
  const names = ["w", "k", "v", "r", "g"];

  function forward(tokens: ArrayLike<number>, state: Float32Array[], every: boolean) {
    const T = tokens.length;
    embed(c, w, tokens, x, C);
    for (let i = 0; i < layers; i++) {
      const a = `blocks.${i}.att.`;
      const [prev, s, ffnPrev] = state.slice(i * 3, i * 3 + 3);
      c.norm(x, w.vec(`blocks.${i}.ln1.weight`), w.vec(`blocks.${i}.ln1.bias`), xn, C, T, 1, 1e-5);
      // dx = previous token − this token; xxx = xx + dx·maa_x
      const maaX = w.vec(a + "time_maa_x");
      c.shift(xn, prev, maaX, dx, T, C, "diff");
      c.shift(xn, prev, maaX, xxx, T, C, "toPrev");
      prev.set(xn.subarray((T - 1) * C, T * C));
      // five data-dependent mix offsets: tanh(xxx·W1) split in 5, each · W2[p]
      c.matmul(w.mat(a + "time_maa_w1"), xxx, mixHidS, T);
      c.act("tanh", mixHidS, mixHid, T * 5 * D);
      const offsets: Product[] = [];
      for (let p = 0; p < 5; p++) {
        for (let t = 0; t < T; t++) {
          part[p].set(mixHid.subarray(t * 5 * D + p * D, t * 5 * D + (p + 1) * D), t * D);
        }
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
      const td = w.vec(a + "time_decay");
      c.tmix("decay", dec, dec, td, dec, decay, T, A);
      const u = w.vec(a + "time_faaaa");
      c.wkv5(s, r, k, v, decay, u, y, H, N, T, true);
      c.norm(y, w.vec(a + "ln_x.weight"), w.vec(a + "ln_x.bias"), yn, A / H, T * H, H, 64e-5);
      c.siluMul(g, yn, T * A); // silu gate
      c.matmul(w.mat(a + "output.weight"), yn, out, T);
      c.add(x, out, T * C);
      ffn.run(w, i, x, ffnPrev, T, true);
    }
    return head.run(w, x, T, every);
  }
  return { maxT, forward };
}
