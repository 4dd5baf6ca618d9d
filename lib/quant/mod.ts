/**
 * Block quantization shared by the engine, the converter and the quantized file format.
 *
 * - q8: blocks of 32 consecutive values of a row; each block stores 32 int8 `q` and one scale
 *   `d = max|x| / 127`; value = q × d.
 * - q4: blocks of 32 with one scale `d = m / -8` where `m` is the value of largest magnitude
 *   (as ggml's Q4_0); each value is stored as a 4-bit `q` in 0..15, value = (q − 8) × d. Byte `j`
 *   of a block (j < 16) holds value `j` in its low nibble and value `j + 16` in its high nibble,
 *   so a SIMD kernel unpacks a block with one mask and one shift.
 *
 * Rows are quantized independently; the row length must be a multiple of 32. Values and scales
 * are kept in separate arrays (values of a row contiguous, then the next row), so kernels stream
 * plain bytes.
 * @module
 */

import { floatToHalf, halfToFloat } from "../formats/dtype.ts";

/** Values per quantization block. */
export const QBLOCK = 32;

/** Quantizes `src` (rows × cols, row-major) to q8 into `q` (rows × cols) and `scales`. */
export function quantizeQ8(
  src: Float32Array,
  q: Int8Array = new Int8Array(src.length),
  scales: Float32Array = new Float32Array(src.length / QBLOCK),
): { q: Int8Array; scales: Float32Array } {
  const nb = src.length / QBLOCK;
  for (let b = 0; b < nb; b++) {
    const o = b * QBLOCK;
    let amax = 0;
    for (let i = 0; i < QBLOCK; i++) amax = Math.max(amax, Math.abs(src[o + i]));
    // Scales are stored as f16 in files: round them here so a file and an in-memory
    // quantization give identical results.
    const d = halfToFloat(floatToHalf(amax / 127));
    const id = d ? 1 / d : 0;
    scales[b] = d;
    for (let i = 0; i < QBLOCK; i++) {
      q[o + i] = Math.max(-127, Math.min(127, Math.round(src[o + i] * id)));
    }
  }
  return { q, scales };
}

/** Quantizes `src` to q4 (packed, 16 bytes per block of 32) into `q` and `scales`. */
export function quantizeQ4(
  src: Float32Array,
  q: Uint8Array = new Uint8Array(src.length / 2),
  scales: Float32Array = new Float32Array(src.length / QBLOCK),
): { q: Uint8Array; scales: Float32Array } {
  const nb = src.length / QBLOCK;
  for (let b = 0; b < nb; b++) {
    const o = b * QBLOCK;
    let amax = 0, m = 0;
    for (let i = 0; i < QBLOCK; i++) {
      const v = src[o + i];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        m = v;
      }
    }
    const d = halfToFloat(floatToHalf(m / -8));
    const id = d ? 1 / d : 0;
    scales[b] = d;
    const qo = b * (QBLOCK / 2);
    for (let j = 0; j < QBLOCK / 2; j++) {
      const lo = Math.max(0, Math.min(15, Math.round(src[o + j] * id + 8)));
      const hi = Math.max(0, Math.min(15, Math.round(src[o + j + 16] * id + 8)));
      q[qo + j] = lo | (hi << 4);
    }
  }
  return { q, scales };
}

/** Dequantizes q8 back to floats. */
export function dequantizeQ8(
  q: Int8Array,
  scales: Float32Array,
  dst: Float32Array = new Float32Array(q.length),
): Float32Array {
  for (let i = 0; i < q.length; i++) dst[i] = q[i] * scales[i >> 5];
  return dst;
}

/** Dequantizes packed q4 back to floats. */
export function dequantizeQ4(
  q: Uint8Array,
  scales: Float32Array,
  dst: Float32Array = new Float32Array(q.length * 2),
): Float32Array {
  const nb = scales.length;
  for (let b = 0; b < nb; b++) {
    const d = scales[b];
    for (let j = 0; j < 16; j++) {
      const byte = q[b * 16 + j];
      dst[b * 32 + j] = ((byte & 15) - 8) * d;
      dst[b * 32 + j + 16] = ((byte >> 4) - 8) * d;
    }
  }
  return dst;
}
