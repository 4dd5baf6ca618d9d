/**
 * RWKV-7 "Goose", following the official `RWKV_x070` (ChatRWKV rwkv_pip_package model.py).
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) indexed [head][value][key],
 * ffn x_prev (C)]`.
 * @module
 */

import type { Compute } from "./ops.ts";
import type { Product } from "./ops.ts";
import type { Runner } from "./runner.ts";
import type { Matrix } from "./tensor.ts";
import type { Weights } from "./weights.ts";

interface LayerV7 {
  ln1w: Float32Array; // (C)
  ln1b: Float32Array;
  ln2w: Float32Array;
  ln2b: Float32Array;
  xr: Float32Array; // token-shift mixes (C)
  xw: Float32Array;
  xk: Float32Array;
  xv: Float32Array;
  xa: Float32Array;
  xg: Float32Array;
  w0: Float32Array; // decay bias (C)
  w1: Matrix; // (Dw, C)
  w2: Matrix; // (C, Dw)
  a0: Float32Array; // in-context learning rate bias (C)
  a1: Matrix; // (Da, C)
  a2: Matrix; // (C, Da)
  v0?: Float32Array; // value residual mix (C), absent in layer 0
  v1?: Matrix; // (Dv, C)
  v2?: Matrix; // (C, Dv)
  g1: Matrix; // (Dg, C)
  g2: Matrix; // (C, Dg)
  kk: Float32Array; // k_k (C)
  ka: Float32Array; // k_a (C)
  rk: Float32Array; // r_k (H·N)
  R: Matrix; // (C, C)
  K: Matrix;
  V: Matrix;
  O: Matrix;
  lnxw: Float32Array; // (C)
  lnxb: Float32Array;
  ffnXk: Float32Array; // (C)
  ffnK: Matrix; // (F, C)
  ffnV: Matrix; // (C, F)
}

/** Binds RWKV-7 weights and buffers for up to `maxT` tokens per call. */
export function createRunnerV7(w: Weights, c: Compute, maxT: number): Runner {
  const { layers, embd: C, heads: H, headSize: N, vocab, ffnDim: F } = w.layout.spec;
  const L: LayerV7[] = [];
  for (let i = 0; i < layers; i++) {
    const a = `blocks.${i}.att.`, f = `blocks.${i}.ffn.`, b = `blocks.${i}.`;
    L.push({
      ln1w: w.vec(b + "ln1.weight", C),
      ln1b: w.vec(b + "ln1.bias", C),
      ln2w: w.vec(b + "ln2.weight", C),
      ln2b: w.vec(b + "ln2.bias", C),
      xr: w.vec(a + "x_r", C),
      xw: w.vec(a + "x_w", C),
      xk: w.vec(a + "x_k", C),
      xv: w.vec(a + "x_v", C),
      xa: w.vec(a + "x_a", C),
      xg: w.vec(a + "x_g", C),
      w0: w.vec(a + "w0", C),
      w1: w.mat(a + "w1", undefined, C),
      w2: w.mat(a + "w2", C, w.mat(a + "w1").rows),
      a0: w.vec(a + "a0", C),
      a1: w.mat(a + "a1", undefined, C),
      a2: w.mat(a + "a2", C, w.mat(a + "a1").rows),
      v0: i > 0 ? w.vec(a + "v0", C) : undefined,
      v1: i > 0 ? w.mat(a + "v1", undefined, C) : undefined,
      v2: i > 0 ? w.mat(a + "v2", C, w.mat(a + "v1").rows) : undefined,
      g1: w.mat(a + "g1", undefined, C),
      g2: w.mat(a + "g2", C, w.mat(a + "g1").rows),
      kk: w.vec(a + "k_k", C),
      ka: w.vec(a + "k_a", C),
      rk: w.vec(a + "r_k", C),
      R: w.mat(a + "receptance.weight", C, C),
      K: w.mat(a + "key.weight", C, C),
      V: w.mat(a + "value.weight", C, C),
      O: w.mat(a + "output.weight", C, C),
      lnxw: w.vec(a + "ln_x.weight", C),
      lnxb: w.vec(a + "ln_x.bias", C),
      ffnXk: w.vec(f + "x_k", C),
      ffnK: w.mat(f + "key.weight", F, C),
      ffnV: w.mat(f + "value.weight", C, F),
    });
  }
  const emb = w.mat("emb.weight", vocab, C), head = w.mat("head.weight", vocab, C);
  const lnOutW = w.vec("ln_out.weight", C), lnOutB = w.vec("ln_out.bias", C);
  const D = Math.max(L[0].w1.rows, L[0].a1.rows, L[0].g1.rows, L[layers - 1].v1?.rows ?? 0);

  // Private buffers (every team member computes these alike).
  const x = c.buffer(maxT * C, false); // residual stream (T, C)
  const xn = c.buffer(maxT * C, false); // layer-normed input (T, C)
  const mix = Array.from({ length: 6 }, () => c.buffer(maxT * C, false)); // xr xw xk xv xa xg
  const lowW = c.buffer(maxT * D, false), lowG = c.buffer(maxT * D, false); // tanh, σ of them
  const vFirst = c.buffer(maxT * C, false); // layer 0's v (T, C)
  const vMix = c.buffer(maxT * C, false); // v after the value residual (T, C)
  const kMod = c.buffer(maxT * C, false); // k after the in-context rate (T, C)
  const y = c.buffer(maxT * C, false); // the recurrence's output (T, C)
  const wDecay = c.buffer(maxT * C, false); // (T, C)
  const kkN = c.buffer(maxT * C, false); // normalised k·k_k (T, C)
  const kkA = c.buffer(maxT * C, false); // kk ⊙ a (T, C)
  const hid = c.buffer(maxT * F, false); // relu² hidden of the channel mix (T, F)
  // Shared buffers: written only by the products (and yOut by the heads' time mix).
  const r = c.buffer(maxT * C, true), k = c.buffer(maxT * C, true), v = c.buffer(maxT * C, true);
  // the low-rank branches' hidden layers (T, D): decay, in-context rate, gate, value residual
  const [hidW, hidA, hidG, hidV] = Array.from({ length: 4 }, () => c.buffer(maxT * D, true));
  const wl = c.buffer(maxT * C, true), al = c.buffer(maxT * C, true);
  const vl = c.buffer(maxT * C, true), gl = c.buffer(maxT * C, true);
  const att = c.buffer(maxT * C, true), ffnOut = c.buffer(maxT * C, true);
  const yOut = c.buffer(maxT * C, true); // attention output before O (T, C), written by heads
  const ffnHid = c.buffer(maxT * F, true);
  const logits = c.buffer(maxT * vocab, true);

  function forward(
    tokens: ArrayLike<number>,
    state: Float32Array[],
    everyPosition: boolean,
  ): Float32Array {
    const T = tokens.length;
    const rowBuf = x;
    for (let t = 0; t < T; t++) c.row(emb, tokens[t], rowBuf.subarray(t * C, (t + 1) * C));

    for (let i = 0; i < layers; i++) {
      const l = L[i];
      const attPrev = state[i * 3], wkv = state[i * 3 + 1], ffnPrev = state[i * 3 + 2];

      // ---- time mix ----
      c.norm(x, l.ln1w, l.ln1b, xn, C, T, 1, 1e-5);
      // token shift: each token mixes with the previous one (the state's for the first)
      const mixW = [l.xr, l.xw, l.xk, l.xv, l.xa, l.xg];
      for (let m = 0; m < 6; m++) c.shift(xn, attPrev, mixW[m], mix[m], T, C, "toPrev");
      attPrev.set(xn.subarray((T - 1) * C, T * C));
      const [xr, xw, xk, xv, xa, xg] = mix;
      // the products of the mixed inputs, and the low-rank branches x·m1 → act → ·m2 (decay:
      // tanh, gate: σ, rate and value residual: none), each stage in one team step
      const first: Product[] = [
        [l.R, xr, r],
        [l.K, xk, k],
        [l.V, xv, v],
        [l.w1, xw, hidW],
        [l.a1, xa, hidA],
        [l.g1, xg, hidG],
      ];
      if (i > 0) first.push([l.v1!, xv, hidV]);
      c.matmuls(first, T);
      c.act("tanh", hidW, lowW, T * l.w1.rows);
      c.act("sigmoid", hidG, lowG, T * l.g1.rows);
      const second: Product[] = [[l.w2, lowW, wl], [l.a2, hidA, al], [l.g2, lowG, gl]];
      if (i > 0) second.push([l.v2!, hidV, vl]);
      c.matmuls(second, T);

      c.v7TimeMix({
        T,
        H,
        N,
        a0: l.a0,
        al,
        w0: l.w0,
        wl,
        v0: l.v0,
        vl,
        v,
        vFirst,
        kkW: l.kk,
        ka: l.ka,
        k,
        wDecay,
        vMix,
        kkN,
        kkA,
        kMod,
        // state = state · diag(w) − (state · kk) ⊗ (kk · a) + v ⊗ k ; y = state · r
        S: wkv,
        r,
        y,
        // then group norm, bonus (r · k · r_k) summed per head times v, and the gate
        lnw: l.lnxw,
        lnb: l.lnxb,
        rk: l.rk,
        g: gl,
        out: yOut,
      });
      c.matmul(l.O, yOut, att, T);
      c.add(x, att, T * C);

      // ---- channel mix ----
      c.norm(x, l.ln2w, l.ln2b, xn, C, T, 1, 1e-5);
      c.shift(xn, ffnPrev, l.ffnXk, xk, T, C, "toPrev");
      ffnPrev.set(xn.subarray((T - 1) * C, T * C));
      c.matmul(l.ffnK, xk, ffnHid, T);
      c.act("relusq", ffnHid, hid, T * F);
      c.matmul(l.ffnV, hid, ffnOut, T);
      c.add(x, ffnOut, T * C);
    }

    const t0 = everyPosition ? 0 : T - 1;
    const n = T - t0;
    const xo = xn.subarray(t0 * C, T * C);
    c.norm(x.subarray(t0 * C, T * C), lnOutW, lnOutB, xo, C, n, 1, 1e-5);
    c.matmul(head, xo, logits, n);
    return logits.subarray(0, n * vocab);
  }
  return { maxT, forward };
}
