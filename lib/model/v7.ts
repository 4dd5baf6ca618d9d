/**
 * RWKV-7 "Goose", following the official `RWKV_x070` (ChatRWKV rwkv_pip_package model.py).
 *
 * State per layer, in official order: `[att x_prev (C), wkv (H, N, N) indexed [head][value][key],
 * ffn x_prev (C)]`.
 * @module
 */

import type { MatrixShape, Ops, Product, Runner, Segment, WeightSource } from "./ops.ts";

interface LayerV7<B, M extends MatrixShape> {
  ln1w: B; // (C)
  ln1b: B;
  ln2w: B;
  ln2b: B;
  xr: B; // token-shift mixes (C)
  xw: B;
  xk: B;
  xv: B;
  xa: B;
  xg: B;
  w0: B; // decay bias (C)
  w1: M; // (Dw, C)
  w2: M; // (C, Dw)
  a0: B; // in-context learning rate bias (C)
  a1: M; // (Da, C)
  a2: M; // (C, Da)
  v0?: B; // value residual mix (C), absent in layer 0
  v1?: M; // (Dv, C)
  v2?: M; // (C, Dv)
  g1: M; // (Dg, C)
  g2: M; // (C, Dg)
  kk: B; // k_k (C)
  ka: B; // k_a (C)
  rk: B; // r_k (H·N)
  R: M; // (C, C)
  K: M;
  V: M;
  O: M;
  lnxw: B; // (C)
  lnxb: B;
  ffnXk: B; // (C)
  ffnK: M; // (F, C)
  ffnV: M; // (C, F)
}

/** Binds RWKV-7 weights and buffers for up to `maxT` tokens per pass. */
export function createRunnerV7<B, M extends MatrixShape>(
  w: WeightSource<B, M>,
  c: Ops<B, M>,
  maxT: number,
): Runner<B> {
  const { layers, embd: C, heads: H, headSize: N, vocab, ffnDim: F } = w.spec;
  const L: LayerV7<B, M>[] = [];
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

  const x = c.buffer(maxT * C); // residual stream (T, C)
  const xn = c.buffer(maxT * C); // layer-normed input (T, C)
  const mix = Array.from({ length: 6 }, () => c.buffer(maxT * C)); // xr xw xk xv xa xg (T, C)
  const r = c.buffer(maxT * C), k = c.buffer(maxT * C), v = c.buffer(maxT * C); // (T, C)
  // the low-rank branches' hidden layers (T, D): decay, in-context rate, gate, value residual
  const [hidW, hidA, hidG, hidV] = Array.from({ length: 4 }, () => c.buffer(maxT * D));
  const lowW = c.buffer(maxT * D), lowG = c.buffer(maxT * D); // tanh, σ of them (T, D)
  const wl = c.buffer(maxT * C), al = c.buffer(maxT * C); // their second halves (T, C)
  const vl = c.buffer(maxT * C), gl = c.buffer(maxT * C);
  const vFirst = c.buffer(maxT * C); // layer 0's v (T, C)
  const vMix = c.buffer(maxT * C); // v after the value residual (T, C)
  const kMod = c.buffer(maxT * C); // k after the in-context rate (T, C)
  const wDecay = c.buffer(maxT * C); // (T, C)
  const kkN = c.buffer(maxT * C); // normalised k·k_k (T, C)
  const kkA = c.buffer(maxT * C); // kk ⊙ a (T, C)
  const y = c.buffer(maxT * C); // the recurrence's output (T, C)
  const yOut = c.buffer(maxT * C); // attention output before O (T, C)
  const att = c.buffer(maxT * C); // after O (T, C)
  const ffnHid = c.buffer(maxT * F), hid = c.buffer(maxT * F); // K·xk, relu² of it (T, F)
  const ffnOut = c.buffer(maxT * C); // (T, C)
  const last = c.buffer(maxT * C); // the segments' last rows (segments ≤ T, C)
  const logits = c.buffer(maxT * vocab); // (T, vocab)

  function forward(tokens: ArrayLike<number>, segs: readonly Segment<B>[], every: boolean): B {
    const T = tokens.length;
    c.embed(emb, tokens, x);

    for (let i = 0; i < layers; i++) {
      const l = L[i], s = i * 3; // state: att x_prev, wkv, ffn x_prev

      // ---- time mix ----
      c.norm(x, l.ln1w, l.ln1b, xn, C, T, 1, 1e-5);
      // token shift: each token mixes with the previous one (the state's for the first)
      const mixW = [l.xr, l.xw, l.xk, l.xv, l.xa, l.xg];
      for (let m = 0; m < 6; m++) c.shift(xn, segs, s, mixW[m], mix[m], C, "toPrev");
      c.keepLast(xn, segs, s, C);
      const [xr, xw, xk, xv, xa, xg] = mix;
      // the products of the mixed inputs, and the low-rank branches x·m1 → act → ·m2 (decay:
      // tanh, gate: σ, rate and value residual: none)
      const first: Product<B, M>[] = [
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
      const second: Product<B, M>[] = [[l.w2, lowW, wl], [l.a2, hidA, al], [l.g2, lowG, gl]];
      if (i > 0) second.push([l.v2!, hidV, vl]);
      c.matmuls(second, T, { H, N }); // read only by the time mix, head by head

      c.v7TimeMix({
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
        S: s + 1,
        r,
        y,
        // then group norm, bonus (r · k · r_k) summed per head times v, and the gate
        lnw: l.lnxw,
        lnb: l.lnxb,
        rk: l.rk,
        g: gl,
        out: yOut,
      }, segs);
      c.matmul(l.O, yOut, att, T);
      c.add(x, att, T * C);

      // ---- channel mix ----
      c.norm(x, l.ln2w, l.ln2b, xn, C, T, 1, 1e-5);
      c.shift(xn, segs, s + 2, l.ffnXk, xk, C, "toPrev");
      c.keepLast(xn, segs, s + 2, C);
      c.matmul(l.ffnK, xk, ffnHid, T);
      c.act("relusq", ffnHid, hid, T * F);
      c.matmul(l.ffnV, hid, ffnOut, T);
      c.add(x, ffnOut, T * C);
    }

    // the head: after each segment's last token, or after every token
    let rows = T, src = x;
    if (!every) {
      c.lastRows(x, segs, last, C);
      rows = segs.length;
      src = last;
    }
    c.norm(src, lnOutW, lnOutB, xn, C, rows, 1, 1e-5);
    c.matmul(head, xn, logits, rows);
    return logits;
  }
  return { maxT, forward };
}
