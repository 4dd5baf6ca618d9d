/**
 * Rearranging stored values.
 * @module
 */

/** (batch, rows, cols) → (batch, cols, rows). */
export function swapLastAxes<T extends Float32Array | Uint16Array>(
  src: T,
  t: { batch: number; rows: number; cols: number },
): T {
  const dst =
    (src instanceof Float32Array ? new Float32Array(src.length) : new Uint16Array(src.length)) as T;
  const { batch, rows, cols } = t;
  const plane = rows * cols;
  for (let b = 0; b < batch; b++) {
    const o = b * plane;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) dst[o + c * rows + r] = src[o + r * cols + c];
    }
  }
  return dst;
}
