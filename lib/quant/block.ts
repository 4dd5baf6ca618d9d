/**
 * Block quantization: the math shared by the engine, the writer and the reader of the
 * quantized file format (see `format.ts` and docs/QUANT_FORMAT.md).
 *
 * - q8: blocks of 32 consecutive values of a row; each block stores 32 int8 `q` and one scale
 *   `d = max|x| / 127`; value = q × d.
 * - q4: blocks of 32 with one scale `d = m / -8` where `m` is the value of largest magnitude
 *   (as ggml's Q4_0); each value is stored as a 4-bit `q` in 0..15, value = (q − 8) × d. Byte `j`
 *   of a block (j < 16) holds value `j` in its low nibble and value `j + 16` in its high nibble,
 *   so a SIMD kernel unpacks a block with one mask and one shift.
 *
 * Scales are rounded to bfloat16 (as format version 3 stores them) before the values are
 * quantized, so a file and an in-memory quantization give identical results. bf16 has f32's
 * exponent range: a block whose values are not all zero keeps a non-zero scale (f16, used up to
 * format version 2, rounds every scale below 2^-25 to zero, i.e. blocks whose largest magnitude is
 * under ~7.6e-6 lost all their values).
 *
 * Rows are quantized independently; the row length must be a multiple of 32. Values and scales
 * are kept in separate arrays (values of a row contiguous, then the next row), so kernels stream
 * plain bytes.
 * @module
 */

/**
 * Values per quantization block.
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { QBLOCK } from "./block.ts";
 * ok(QBLOCK === 32);
 * ```
 */
export const QBLOCK = 32;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Smallest positive bfloat16 (2^-133): the scale of a block too small for any other. */
const BF16_MIN = 2 ** -133;

/**
 * A block scale as stored: rounded to the nearest bfloat16 (ties to even), and never zero when
 * `d` is not (a scale below the smallest bf16 becomes that smallest one).
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { roundScale } from "./block.ts";
 * ok(roundScale(1e-8 / 127) > 0); // an f16 scale would be 0 here
 * ok(roundScale(1 / 3) === 0.333984375);
 * ```
 */
export function roundScale(d: number): number {
  f32[0] = d;
  const u = u32[0];
  if ((u & 0x7f800000) === 0x7f800000) return f32[0]; // inf, NaN: as they are
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  const r = f32[0];
  return r === 0 && d !== 0 ? Math.sign(d) * BF16_MIN : r;
}

/**
 * Quantizes `src` (rows × cols, row-major) to q8 into `q` (rows × cols) and `scales`.
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { dequantizeQ8, quantizeQ8 } from "./block.ts";
 * const x = Float32Array.from({ length: 32 }, (_, i) => (i - 16) * 1e-7);
 * const { q, scales } = quantizeQ8(x);
 * const back = dequantizeQ8(q, scales);
 * ok(Math.abs(back[0] - x[0]) <= scales[0] / 2);
 * ```
 */
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
    // rounded as a file stores it, so a file and an in-memory quantization agree
    const d = roundScale(amax / 127);
    const id = d ? 1 / d : 0;
    scales[b] = d;
    for (let i = 0; i < QBLOCK; i++) {
      q[o + i] = Math.max(-127, Math.min(127, Math.round(src[o + i] * id)));
    }
  }
  return { q, scales };
}

/**
 * Quantizes `src` to q4 (packed, 16 bytes per block of 32) into `q` and `scales`.
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { dequantizeQ4, quantizeQ4 } from "./block.ts";
 * const x = Float32Array.from({ length: 32 }, (_, i) => i - 16);
 * const { q, scales } = quantizeQ4(x);
 * ok(q.length === 16 && scales[0] === 2);
 * ok(dequantizeQ4(q, scales)[0] === -16);
 * ```
 */
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
    // A block of zeros stores scale +0 and q = 0 (any q reads back as 0 there): zero bytes,
    // so zero matrices quantize to runs a writer can leave as holes, as in q8.
    const d = m ? roundScale(m / -8) : 0;
    const id = d ? 1 / d : 0, mid = d ? 8 : 0;
    scales[b] = d;
    const qo = b * (QBLOCK / 2);
    for (let j = 0; j < QBLOCK / 2; j++) {
      const lo = Math.max(0, Math.min(15, Math.round(src[o + j] * id + mid)));
      const hi = Math.max(0, Math.min(15, Math.round(src[o + j + 16] * id + mid)));
      q[qo + j] = lo | (hi << 4);
    }
  }
  return { q, scales };
}

/**
 * Dequantizes q8 back to floats.
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { dequantizeQ8 } from "./block.ts";
 * const v = dequantizeQ8(new Int8Array(32).fill(2), new Float32Array([0.5]));
 * ok(v[31] === 1);
 * ```
 */
export function dequantizeQ8(
  q: Int8Array,
  scales: Float32Array,
  dst: Float32Array = new Float32Array(q.length),
): Float32Array {
  for (let i = 0; i < q.length; i++) dst[i] = q[i] * scales[i >> 5];
  return dst;
}

/**
 * Dequantizes packed q4 back to floats.
 * @example
 * ```ts
 * import { ok } from "node:assert";
 * import { dequantizeQ4 } from "./block.ts";
 * const v = dequantizeQ4(new Uint8Array(16).fill(0x97), new Float32Array([0.5]));
 * ok(v[0] === -0.5 && v[16] === 0.5); // low nibble 7, high nibble 9
 * ```
 */
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
