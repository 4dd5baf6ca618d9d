/**
 * Layer and group normalisation in plain TypeScript: what the loader folds into RWKV-4's
 * embeddings (`ln0`) and what the reference backend's `norm` runs.
 * @module
 */

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
