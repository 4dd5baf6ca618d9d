/**
 * What a model's math needs from the machine, and the plain TypeScript implementation of it
 * (the reference path every faster engine is tested against).
 *
 * The rule that lets the same math run in a team of Workers: buffers asked for as `shared`
 * are written ONLY by `matmul` (each team member writes its own rows, then all wait);
 * everything else — norms, the recurrence, the state — is computed by every member alike in
 * its own private buffers.
 * @module
 */

import { groupedByte, groupedScale, type Matrix } from "./tensor.ts";

/** The machine a forward pass runs on. */
export interface Compute {
  /**
   * `y[t] = m · x[t]` for each of the `T` rows of `x` (`x`: T × cols, `y`: T × rows, row-major).
   * The hot function of every model: nearly all time goes here.
   */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void;
  /** A zeroed scratch vector; `shared` ones are matmul outputs every member reads. */
  buffer(n: number, shared: boolean): Float32Array;
  /** Copies row `row` of `m` into `out` as f32 (embedding look-up). */
  row(m: Matrix, row: number, out: Float32Array): void;
  /** One token of the RWKV-7 recurrence, all heads: see {@link wkv7TS}. */
  wkv7(
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
  ): void;
  /** One token of the RWKV-5/6 recurrence, all heads: see {@link wkv5TS}. */
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
  ): void;
}

/**
 * RWKV-7's state update for one token. `S` is (H, N, N) as [head][value i][key j]; the vectors
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
): void {
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
 * RWKV-5/6's state update for one token. `S` is (H, N, N) as [head][key i][value j]; decay `w`
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
): void {
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

  buffer(n: number): Float32Array {
    return new Float32Array(n);
  }

  row(m: Matrix, row: number, out: Float32Array): void {
    decodeRow(m, row, out);
  }

  wkv7 = wkv7TS;
  wkv5 = wkv5TS;
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
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[o + i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = x[o + i] - mean;
    v += d * d;
  }
  const inv = 1 / Math.sqrt(v / n + 1e-5);
  for (let i = 0; i < n; i++) out[o + i] = (x[o + i] - mean) * inv * w[i] + b[i];
}

/**
 * GroupNorm of one token's `heads × n` values in place, each head normalised alone, then
 * scaled by `w` and shifted by `b` (RWKV-5+ `ln_x`, eps 64e-5 in the official code).
 */
export function groupNorm(
  x: Float32Array,
  heads: number,
  w: Float32Array,
  b: Float32Array,
  eps: number,
  o = 0,
): void {
  const n = w.length / heads;
  for (let h = 0; h < heads; h++) {
    const ho = o + h * n;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[ho + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) {
      const d = x[ho + i] - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) {
      x[ho + i] = (x[ho + i] - mean) * inv * w[h * n + i] + b[h * n + i];
    }
  }
}

/** Logistic sigmoid. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
