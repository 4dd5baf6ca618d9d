/**
 * The math of every operation a forward pass runs (see `Ops` in `lib/model/ops.ts`), in plain
 * TypeScript over Float32Arrays: the definitions the reference backend runs and every faster
 * backend is tested against.
 * @module
 */

import { f16ToF32 } from "../../formats/dtype.ts";
import { normTS } from "../../model/norm.ts";
import type { Activation, ShiftForm } from "../../model/ops.ts";
import type { Matrix } from "../../model/tensor.ts";

export { layerNorm, normTS } from "../../model/norm.ts";

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

/** Plain-TypeScript `Ops.act`. */
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

/** Plain-TypeScript `Ops.shift`. */
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
 * Plain-TypeScript `Ops.tmix`: `"lerp"`: `out = x + dx·(base + off)` (RWKV-6's
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

/** Plain-TypeScript `Ops.add`. */
export function addTS(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

/** Plain-TypeScript `Ops.sigmoidMulAdd`. */
export function sigmoidMulAddTS(r: Float32Array, v: Float32Array, x: Float32Array, n: number) {
  for (let i = 0; i < n; i++) x[i] += sigmoid(r[i]) * v[i];
}

/** Plain-TypeScript `Ops.siluMul`. */
export function siluMulTS(g: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) y[i] *= g[i] / (1 + Math.exp(-g[i]));
}

/** RWKV-4's recurrence: T tokens of A channels, state `aa`, `bb`, `pp` (A each) updated. */
export interface Wkv4Arrays {
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
export function wkv4TS(a: Wkv4Arrays): void {
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
export interface V7GatesArrays {
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
export function v7GatesTS(g: V7GatesArrays): void {
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
export interface V7OutArrays {
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
export function v7OutTS(a: V7OutArrays): void {
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
export interface V7TimeMixArrays extends V7GatesArrays {
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
export function v7TimeMixTS(a: V7TimeMixArrays): void {
  v7GatesTS(a);
  wkv7TS(a.S, a.r, a.wDecay, a.kMod, a.vMix, a.kkN, a.kkA, a.y, a.H, a.N, a.T);
  v7OutTS(a);
}

/** Decodes row `r` of a row-major matrix into `out` as f32. */
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
    case "f16":
      f16ToF32((m.data as Uint16Array).subarray(o, o + c), out);
      return;
    case "q8": {
      const d = m.data as Int8Array, s = m.scales, so = o >> 5;
      for (let i = 0; i < c; i++) out[i] = d[o + i] * s[so + (i >> 5)];
      return;
    }
    case "q4": {
      // two values per byte, ggml's Q4_0 order: byte j of a block holds values j and j + 16
      const d = m.data as Uint8Array, s = m.scales, so = o >> 5, bo = o >> 1;
      for (let b = 0; b < c >> 5; b++) {
        const sc = s[so + b];
        for (let j = 0; j < 16; j++) {
          const byte = d[bo + b * 16 + j];
          out[b * 32 + j] = ((byte & 15) - 8) * sc;
          out[b * 32 + j + 16] = ((byte >> 4) - 8) * sc;
        }
      }
      return;
    }
  }
}

/** Plain-TypeScript `matmul` over rows [r0, r1) of `m` (its rows read by `decode`: row-major). */
export function matmulRowsTS(
  m: Matrix,
  x: Float32Array,
  y: Float32Array,
  T: number,
  r0: number,
  r1: number,
  scratch: Float32Array,
  decode: (m: Matrix, r: number, out: Float32Array) => void = decodeRow,
): void {
  const cols = m.cols, rows = m.rows;
  const w = m.dtype === "f32" ? (m.data as Float32Array) : scratch;
  for (let r = r0; r < r1; r++) {
    let base = 0;
    if (m.dtype === "f32") base = r * cols;
    else decode(m, r, scratch);
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

// ---- moving rows between the pass's buffers and the sequences' states ----

/** A sequence's rows in a pass and its state tensors (see `Segment` in `lib/model/ops.ts`). */
type Rows = {
  readonly start: number;
  readonly length: number;
  readonly state: readonly Float32Array[];
};

/** Plain-TypeScript `Ops.keepLast`: each segment's state tensor `slot` ← its last row of `src`. */
export function keepLastTS(
  src: Float32Array,
  segs: readonly Rows[],
  slot: number,
  C: number,
): void {
  for (const s of segs) {
    const o = (s.start + s.length - 1) * C;
    s.state[slot].set(src.subarray(o, o + C));
  }
}

/** Plain-TypeScript `Ops.lastRows`: row i of `out` ← segment i's last row of `src`. */
export function lastRowsTS(src: Float32Array, segs: readonly Rows[], out: Float32Array, C: number) {
  segs.forEach((s, i) => {
    const o = (s.start + s.length - 1) * C;
    out.set(src.subarray(o, o + C), i * C);
  });
}

/** Plain-TypeScript `Ops.columns`: `out[t] = src[t][offset..offset + width)` for T rows. */
export function columnsTS(
  src: Float32Array,
  stride: number,
  offset: number,
  width: number,
  out: Float32Array,
  T: number,
): void {
  for (let t = 0; t < T; t++) {
    out.set(src.subarray(t * stride + offset, t * stride + offset + width), t * width);
  }
}

// ---- element-wise operations shared by every version ----

/** Logistic sigmoid. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
