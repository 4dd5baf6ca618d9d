/**
 * What a model's math needs from the machine, and the plain TypeScript implementation of it
 * (the reference path every faster engine is tested against).
 *
 * The rule that lets the same math run in a team of Workers: buffers asked for as `shared`
 * are written ONLY by `matmul` and the head-split steps `v7TimeMix`/`wkv5` (each team member
 * writes its own rows or heads, then all wait); everything else — norms, gates, the token
 * shift — is computed by every member alike in its own private buffers, reading shared ones.
 * The recurrences' state tensors (H × N × N) are one shared copy the team updates in place.
 * @module
 */

import { groupedByte, groupedScale, type Matrix } from "./tensor.ts";

/** One product for {@link Compute.matmuls}: `y = m · x`. */
export type Product = [m: Matrix, x: Float32Array, y: Float32Array];

/** The machine a forward pass runs on. */
export interface Compute {
  /**
   * `y[t] = m · x[t]` for each of the `T` rows of `x` (`x`: T × cols, `y`: T × rows, row-major).
   * The hot function of every model: nearly all time goes here.
   */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void;
  /**
   * Several independent products (no input is another's output), each as {@link matmul}: a
   * team meets once after all of them instead of after each.
   */
  matmuls(products: Product[], T: number): void;
  /** A zeroed scratch vector; `shared` ones are matmul/recurrence outputs every member reads. */
  buffer(n: number, shared: boolean): Float32Array;
  /** Copies row `row` of `m` into `out` as f32 (embedding look-up). */
  row(m: Matrix, row: number, out: Float32Array): void;
  /**
   * `groups` runs of `n` values normalised alone (`out` may be `x`): see {@link normTS}. LayerNorm
   * over T tokens is `norm(x, w, b, out, C, T, 1, 1e-5)`, GroupNorm over heads `wrap` = H.
   */
  norm(
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    out: Float32Array,
    n: number,
    groups: number,
    wrap: number,
    eps: number,
  ): void;
  /** `out[i] = f(x[i])` for `n` values (`x` and `out` may be the same): see {@link actTS}. */
  act(kind: Activation, x: Float32Array, out: Float32Array, n: number): void;
  /**
   * The token shift of T tokens of C values: each token mixed with the previous one (`prev`,
   * the state's, for the first): see {@link shiftTS}.
   */
  shift(
    cur: Float32Array,
    prev: Float32Array,
    mix: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
    form: ShiftForm,
  ): void;
  /**
   * RWKV-6's data-dependent mixes over T tokens of C values, a per-channel `base` plus a
   * per-token `off`: see {@link tmixTS}.
   */
  tmix(
    op: "lerp" | "decay",
    x: Float32Array,
    dx: Float32Array,
    base: Float32Array,
    off: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
  ): void;
  /** `x[i] += y[i]` (the residual stream). */
  add(x: Float32Array, y: Float32Array, n: number): void;
  /** `x[i] += σ(r[i])·v[i]` (the RWKV-4/5/6 channel-mix output). */
  sigmoidMulAdd(r: Float32Array, v: Float32Array, x: Float32Array, n: number): void;
  /** `y[i] *= g[i]·σ(g[i])` (the RWKV-5/6 SiLU gate). */
  siluMul(g: Float32Array, y: Float32Array, n: number): void;
  /** RWKV-4's recurrence over T tokens: see {@link wkv4TS}. */
  wkv4(a: Wkv4Args): void;
  /**
   * RWKV-7's time mix between its products, T tokens: gates, recurrence, group norm, bonus and
   * output gate (see {@link v7TimeMixTS}). Every step is per head, so a team splits the heads:
   * `S` (the state's own tensor) and `out` must be shared; the rest may be private.
   */
  v7TimeMix(a: V7TimeMixArgs): void;
  /**
   * T tokens of the RWKV-5/6 recurrence, all heads: see {@link wkv5TS}; `w` holds one decay for
   * every token (RWKV-5, H·N values) or, with `decayPerToken`, one per token (RWKV-6, T × H·N).
   * A team splits the heads: `S` (the state's own tensor) and `y` must then be shared.
   */
  wkv5(
    S: Float32Array,
    r: Float32Array,
    k: Float32Array,
    v: Float32Array,
    w: Float32Array,
    u: Float32Array,
    y: Float32Array,
    H: number,
    N: number,
    T: number,
    decayPerToken: boolean,
  ): void;
}

/**
 * RWKV-7's state update, token by token (T of them, vectors T × H·N). `S` is (H, N, N) as [head][value i][key j]; the vectors
 * hold H·N channels: `sa_i = Σ_j S_ij kk_j`, `S_ij ← S_ij w_j − sa_i b_j + v_i k_j` (b = kk ⊙ a,
 * the in-context "delta rule"), then `y_i = Σ_j S_ij r_j`.
 */
export function wkv7TS(
  S: Float32Array,
  r: Float32Array,
  w: Float32Array,
  k: Float32Array,
  v: Float32Array,
  kk: Float32Array,
  b: Float32Array,
  y: Float32Array,
  H: number,
  N: number,
  T = 1,
): void {
  if (T > 1) {
    const C = H * N;
    for (let t = 0; t < T; t++) {
      const o = t * C, at = (x: Float32Array) => x.subarray(o, o + C);
      wkv7TS(S, at(r), at(w), at(k), at(v), at(kk), at(b), at(y), H, N, 1);
    }
    return;
  }
  for (let h = 0; h < H; h++) {
    const ho = h * N;
    for (let i = 0; i < N; i++) {
      const row = (ho + i) * N;
      let sa = 0;
      for (let j = 0; j < N; j++) sa += S[row + j] * kk[ho + j];
      const vi = v[ho + i];
      let acc = 0;
      for (let j = 0; j < N; j++) {
        const s = S[row + j] * w[ho + j] - sa * b[ho + j] + vi * k[ho + j];
        S[row + j] = s;
        acc += s * r[ho + j];
      }
      y[ho + i] = acc;
    }
  }
}

/**
 * RWKV-5/6's state update, token by token. `S` is (H, N, N) as [head][key i][value j]; decay `w`
 * and bonus `u` are per key channel: `y_j = Σ_i r_i (u_i k_i v_j + S_ij)`,
 * `S_ij ← k_i v_j + w_i S_ij`.
 */
export function wkv5TS(
  S: Float32Array,
  r: Float32Array,
  k: Float32Array,
  v: Float32Array,
  w: Float32Array,
  u: Float32Array,
  y: Float32Array,
  H: number,
  N: number,
  T = 1,
  decayPerToken = false,
): void {
  if (T > 1) {
    const C = H * N;
    for (let t = 0; t < T; t++) {
      const o = t * C, at = (x: Float32Array) => x.subarray(o, o + C);
      wkv5TS(S, at(r), at(k), at(v), decayPerToken ? at(w) : w, u, at(y), H, N, 1);
    }
    return;
  }
  for (let h = 0; h < H; h++) {
    const ho = h * N, so = h * N * N;
    for (let j = 0; j < N; j++) y[ho + j] = 0;
    for (let i = 0; i < N; i++) {
      const ri = r[ho + i], ki = k[ho + i], ui = u[ho + i], wi = w[ho + i];
      const row = so + i * N;
      for (let j = 0; j < N; j++) {
        const a = ki * v[ho + j];
        const sij = S[row + j];
        y[ho + j] += ri * (ui * a + sij);
        S[row + j] = a + wi * sij;
      }
    }
  }
}

/** The element-wise activations of {@link Compute.act}: tanh, logistic sigmoid, relu². */
export type Activation = "tanh" | "sigmoid" | "relusq";

/** Plain-TypeScript {@link Compute.act}. */
export function actTS(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
  if (kind === "tanh") { for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]); }
  else if (kind === "sigmoid") { for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]); }
  else {
    for (let i = 0; i < n; i++) {
      const z = x[i] < 0 ? 0 : x[i]; // NaN stays NaN, as torch's relu
      out[i] = z * z;
    }
  }
}

/**
 * How a token shift weighs the two tokens: `"toPrev"`: `cur + (prev − cur)·mix` (RWKV-6/7's
 * `x_*`/`maa`), `"toCur"`: `cur·mix + prev·(1 − mix)` (RWKV-4/5's `time_mix`), `"diff"`:
 * `prev − cur` (RWKV-6's dx; `mix` unused).
 */
export type ShiftForm = "toPrev" | "toCur" | "diff";

/** Plain-TypeScript {@link Compute.shift}. */
export function shiftTS(
  cur: Float32Array,
  prev: Float32Array,
  mix: Float32Array,
  out: Float32Array,
  T: number,
  C: number,
  form: ShiftForm,
): void {
  for (let t = 0; t < T; t++) {
    const o = t * C;
    for (let j = 0; j < C; j++) {
      const c = cur[o + j], p = t === 0 ? prev[j] : cur[o - C + j];
      out[o + j] = form === "toPrev"
        ? c + (p - c) * mix[j]
        : form === "toCur"
        ? c * mix[j] + p * (1 - mix[j])
        : p - c;
    }
  }
}

/**
 * Plain-TypeScript {@link Compute.tmix}: `"lerp"`: `out = x + dx·(base + off)` (RWKV-6's
 * token shift with its data-dependent offset), `"decay"`: `out = exp(−exp(base + off))` (its
 * data-dependent decay; x, dx unused).
 */
export function tmixTS(
  op: "lerp" | "decay",
  x: Float32Array,
  dx: Float32Array,
  base: Float32Array,
  off: Float32Array,
  out: Float32Array,
  T: number,
  C: number,
): void {
  for (let t = 0; t < T; t++) {
    const o = t * C;
    for (let j = 0; j < C; j++) {
      const m = base[j] + off[o + j];
      out[o + j] = op === "lerp" ? x[o + j] + dx[o + j] * m : Math.exp(-Math.exp(m));
    }
  }
}

/** Plain-TypeScript {@link Compute.add}. */
export function addTS(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

/** Plain-TypeScript {@link Compute.sigmoidMulAdd}. */
export function sigmoidMulAddTS(r: Float32Array, v: Float32Array, x: Float32Array, n: number) {
  for (let i = 0; i < n; i++) x[i] += sigmoid(r[i]) * v[i];
}

/** Plain-TypeScript {@link Compute.siluMul}. */
export function siluMulTS(g: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) y[i] *= g[i] / (1 + Math.exp(-g[i]));
}

/** RWKV-4's recurrence: T tokens of A channels, state `aa`, `bb`, `pp` (A each) updated. */
export interface Wkv4Args {
  T: number;
  A: number;
  /** Receptance, key, value (T × A). */
  r: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Bonus `u` (time_first) and decay `−e^time_decay` (A). */
  first: Float32Array;
  decay: Float32Array;
  aa: Float32Array;
  bb: Float32Array;
  pp: Float32Array;
  /** σ(r) ⊙ wkv (T × A). */
  out: Float32Array;
}

/**
 * RWKV-4's WKV with the max trick (numerator `aa` and denominator `bb` kept scaled by e^−pp):
 * `out = σ(r)·(aa + e^(u+k)·v)/(bb + e^(u+k))`, then the state decays and takes the token.
 */
export function wkv4TS(a: Wkv4Args): void {
  const { T, A, r, k, v, first, decay, aa, bb, pp, out } = a;
  for (let t = 0; t < T; t++) {
    const o = t * A;
    for (let j = 0; j < A; j++) {
      const kk = k[o + j], vv = v[o + j];
      let ww = first[j] + kk;
      let p = Math.max(pp[j], ww);
      let e1 = Math.exp(pp[j] - p), e2 = Math.exp(ww - p);
      out[o + j] = sigmoid(r[o + j]) * (e1 * aa[j] + e2 * vv) / (e1 * bb[j] + e2);
      ww = decay[j] + pp[j];
      p = Math.max(ww, kk);
      e1 = Math.exp(ww - p);
      e2 = Math.exp(kk - p);
      aa[j] = e1 * aa[j] + e2 * vv;
      bb[j] = e1 * bb[j] + e2;
      pp[j] = p;
    }
  }
}

/** RWKV-7's gates for T tokens of C = H·N channels (vectors of C, matrices T × C). */
export interface V7GatesArgs {
  T: number;
  H: number;
  N: number;
  /** In-context learning rate: bias (C) and low-rank term. */
  a0: Float32Array;
  al: Float32Array;
  /** Decay: bias (C) and low-rank term. */
  w0: Float32Array;
  wl: Float32Array;
  /** Value residual: bias (C) and low-rank term; `v0` absent in layer 0. */
  v0: Float32Array | undefined;
  vl: Float32Array;
  /** This layer's value; layer 0 writes `vFirst`, later layers read it. */
  v: Float32Array;
  vFirst: Float32Array;
  /** k_k and k_a (C), and the key. */
  kkW: Float32Array;
  ka: Float32Array;
  k: Float32Array;
  /** Outputs: decay, mixed value, normalised kk, kk ⊙ a, and the key scaled by the rate. */
  wDecay: Float32Array;
  vMix: Float32Array;
  kkN: Float32Array;
  kkA: Float32Array;
  kMod: Float32Array;
}

/**
 * RWKV-7 before the recurrence: `a = σ(a0 + al)`, `w = exp(−e^−½·σ(w0 + wl))`, the value
 * residual `v + (v_first − v)·σ(v0 + vl)` (layer 0 defines v_first), `kk = k ⊙ k_k`
 * L2-normalised per head, `kk ⊙ a`, and `k ⊙ (1 + (a − 1)·k_a)`.
 */
export function v7GatesTS(g: V7GatesArgs): void {
  const { T, H, N, a0, al, w0, wl, v0, vl, v, vFirst, kkW, ka, k } = g;
  const { wDecay, vMix, kkN, kkA, kMod } = g;
  const C = H * N;
  for (let t = 0; t < T; t++) {
    const o = t * C;
    for (let j = 0; j < C; j++) {
      wDecay[o + j] = Math.exp(-0.606531 * sigmoid(w0[j] + wl[o + j]));
      if (!v0) {
        vFirst[o + j] = v[o + j];
        vMix[o + j] = v[o + j];
      } else {
        const s = sigmoid(v0[j] + vl[o + j]);
        vMix[o + j] = v[o + j] + (vFirst[o + j] - v[o + j]) * s;
      }
    }
    for (let h = 0; h < H; h++) {
      const ho = o + h * N;
      let ss = 0;
      for (let n = 0; n < N; n++) {
        const z = k[ho + n] * kkW[h * N + n];
        kkN[ho + n] = z;
        ss += z * z;
      }
      const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
      for (let n = 0; n < N; n++) {
        const j = ho + n, a = sigmoid(a0[h * N + n] + al[j]);
        kkN[j] *= inv;
        kkA[j] = kkN[j] * a;
        kMod[j] = k[j] * (1 + (a - 1) * ka[h * N + n]);
      }
    }
  }
}

/** RWKV-7 after the recurrence, T tokens of C = H·N channels. */
export interface V7OutArgs {
  T: number;
  H: number;
  N: number;
  /** The recurrence's output (T × C). */
  y: Float32Array;
  /** The gated result (T × C; may be `y`). */
  out: Float32Array;
  /** ln_x weight and bias (C). */
  lnw: Float32Array;
  lnb: Float32Array;
  r: Float32Array;
  kMod: Float32Array;
  /** r_k (C). */
  rk: Float32Array;
  vMix: Float32Array;
  /** The output gate (T × C). */
  g: Float32Array;
}

/** `out = (GroupNorm(y) + (Σ_head r·k·r_k)·v) ⊙ g`, per token (GroupNorm eps 64e-5). */
export function v7OutTS(a: V7OutArgs): void {
  const { T, H, N, y, out, lnw, lnb, r, kMod, rk, vMix, g } = a;
  const C = H * N;
  normTS(y, lnw, lnb, out, N, T * H, H, 64e-5);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    for (let h = 0; h < H; h++) {
      const ho = o + h * N;
      let s = 0;
      for (let n = 0; n < N; n++) s += r[ho + n] * kMod[ho + n] * rk[h * N + n];
      for (let n = 0; n < N; n++) out[ho + n] = (out[ho + n] + s * vMix[ho + n]) * g[ho + n];
    }
  }
}

/** Everything {@link v7TimeMixTS} reads and writes. */
export interface V7TimeMixArgs extends V7GatesArgs {
  /** The wkv state (H, N, N), updated in place. */
  S: Float32Array;
  /** Receptance (T × C). */
  r: Float32Array;
  /** Scratch for the recurrence's output (T × C). */
  y: Float32Array;
  /** ln_x weight and bias, r_k (C). */
  lnw: Float32Array;
  lnb: Float32Array;
  rk: Float32Array;
  /** The output gate (T × C). */
  g: Float32Array;
  /** The result, input of the output product (T × C). */
  out: Float32Array;
}

/** RWKV-7 between the products: {@link v7GatesTS}, {@link wkv7TS}, then {@link v7OutTS}. */
export function v7TimeMixTS(a: V7TimeMixArgs): void {
  v7GatesTS(a);
  wkv7TS(a.S, a.r, a.wDecay, a.kMod, a.vMix, a.kkN, a.kkA, a.y, a.H, a.N, a.T);
  v7OutTS(a);
}

let halfTable: Float32Array | undefined;

function halfToF32Table(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
      halfTable[h] = e === 0
        ? s * m * 2 ** -24
        : e === 31
        ? (m ? NaN : s * Infinity)
        : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return halfTable;
}

/** Decodes row `r` of `m` into `out` as f32. */
export function decodeRow(m: Matrix, r: number, out: Float32Array): void {
  const c = m.cols, o = r * c;
  switch (m.dtype) {
    case "f32":
      out.set((m.data as Float32Array).subarray(o, o + c));
      return;
    case "bf16": {
      const d = m.data as Uint16Array;
      const bits = new Uint32Array(out.buffer, out.byteOffset, c);
      for (let i = 0; i < c; i++) bits[i] = d[o + i] << 16;
      return;
    }
    case "f16": {
      const d = m.data as Uint16Array, t = halfToF32Table();
      for (let i = 0; i < c; i++) out[i] = t[d[o + i]];
      return;
    }
    case "q8": {
      // rows in interleaved groups of four (tensor.ts finishMatrix)
      const d = m.data as Int8Array, s = m.scales, nb = c >> 5;
      for (let i = 0; i < c; i++) {
        out[i] = d[groupedByte(r, i, c)] * s[groupedScale(r, i >> 5, nb)];
      }
      return;
    }
    case "q4": {
      const d = m.data as Uint8Array, s = m.scales, nb = c >> 5, rb = c >> 1;
      for (let b = 0; b < nb; b++) {
        const sc = s[groupedScale(r, b, nb)];
        for (let j = 0; j < 16; j++) {
          const byte = d[groupedByte(r, b * 16 + j, rb)];
          out[b * 32 + j] = ((byte & 15) - 8) * sc;
          out[b * 32 + j + 16] = ((byte >> 4) - 8) * sc;
        }
      }
      return;
    }
  }
}

/** Plain-TypeScript `matmul` over rows [r0, r1) of `m`. */
export function matmulRowsTS(
  m: Matrix,
  x: Float32Array,
  y: Float32Array,
  T: number,
  r0: number,
  r1: number,
  scratch: Float32Array,
): void {
  const cols = m.cols, rows = m.rows;
  const w = m.dtype === "f32" ? (m.data as Float32Array) : scratch;
  for (let r = r0; r < r1; r++) {
    let base = 0;
    if (m.dtype === "f32") base = r * cols;
    else decodeRow(m, r, scratch);
    for (let t = 0; t < T; t++) {
      const xo = t * cols;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      for (; i + 3 < cols; i += 4) {
        s0 += w[base + i] * x[xo + i];
        s1 += w[base + i + 1] * x[xo + i + 1];
        s2 += w[base + i + 2] * x[xo + i + 2];
        s3 += w[base + i + 3] * x[xo + i + 3];
      }
      for (; i < cols; i++) s0 += w[base + i] * x[xo + i];
      y[t * rows + r] = s0 + s1 + s2 + s3;
    }
  }
}

/** The single-threaded TypeScript machine: the reference path. */
export class ReferenceCompute implements Compute {
  #scratch = new Float32Array(0);

  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    if (this.#scratch.length < m.cols) this.#scratch = new Float32Array(m.cols);
    matmulRowsTS(m, x, y, T, 0, m.rows, this.#scratch);
  }

  matmuls(products: Product[], T: number): void {
    for (const [m, x, y] of products) this.matmul(m, x, y, T);
  }

  buffer(n: number): Float32Array {
    return new Float32Array(n);
  }

  row(m: Matrix, row: number, out: Float32Array): void {
    decodeRow(m, row, out);
  }

  wkv5 = wkv5TS;
  norm = normTS;
  shift = shiftTS;
  tmix = tmixTS;
  add = addTS;
  act = actTS;
  sigmoidMulAdd = sigmoidMulAddTS;
  siluMul = siluMulTS;
  wkv4 = wkv4TS;
  v7TimeMix = v7TimeMixTS;
}

// ---- element-wise operations shared by every version ----

/** `out = LayerNorm(x) · w + b` over `n` values at offset `o` (eps 1e-5, as torch). */
export function layerNorm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  out: Float32Array,
  n: number = w.length,
  o = 0,
): void {
  normTS(x.subarray(o, o + n), w, b, out.subarray(o, o + n), n, 1, 1, 1e-5);
}

/**
 * `groups` consecutive runs of `n` values, each normalised alone: `(x − mean)/√(var + eps)·w + b`
 * with run g's weights at `(g mod wrap)·n` (wrap 1: the same weights for every token).
 */
export function normTS(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  out: Float32Array,
  n: number,
  groups: number,
  wrap: number,
  eps: number,
): void {
  for (let g = 0; g < groups; g++) {
    const o = g * n, wo = (g % wrap) * n;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[o + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) {
      const d = x[o + i] - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) out[o + i] = (x[o + i] - mean) * inv * w[wo + i] + b[wo + i];
  }
}

/** Logistic sigmoid. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
