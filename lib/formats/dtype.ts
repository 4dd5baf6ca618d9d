/**
 * Conversions between float formats. All data is little-endian, as every checkpoint format
 * we read stores it, and as every platform Deno runs on is.
 * @module
 */

import { type DType, DTYPE_SIZE } from "./checkpoint.ts";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * bfloat16 bits → float32: the bf16 bits are the top half of the f32 bits.
 * @example
 * ```ts
 * bf16ToF32(new Uint16Array([0x3f80])); // Float32Array [1]
 * ```
 */
export function bf16ToF32(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}

/**
 * float32 → bfloat16 bits, rounding to nearest even as PyTorch does; NaN stays NaN.
 * @example
 * ```ts
 * f32ToBf16(new Float32Array([1])); // Uint16Array [0x3f80]
 * ```
 */
export function f32ToBf16(
  src: Float32Array,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      dst[i] = (x >>> 16) | 0x40; // quiet NaN
    } else {
      dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return dst;
}

/** One IEEE half (bits) → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let halfTable: Float32Array | undefined;

/**
 * IEEE float16 bits → float32 (exact).
 * @example
 * ```ts
 * f16ToF32(new Uint16Array([0x3c00])); // Float32Array [1]
 * ```
 */
export function f16ToF32(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  const t = halfTable;
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
  return dst;
}

/** One float → IEEE half bits, round to nearest even, overflow to infinity. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  e = h >>> 10;
  return sign | h;
}

/**
 * float32 → IEEE float16 bits.
 * @example
 * ```ts
 * f32ToF16(new Float32Array([1])); // Uint16Array [0x3c00]
 * ```
 */
export function f32ToF16(
  src: Float32Array,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalf(src[i]);
  return dst;
}

/**
 * Decodes raw little-endian tensor bytes of a float or integer dtype into a new Float32Array,
 * or into `into` (which must hold exactly the values) so a loop can reuse one buffer.
 * Integer and bool tensors are converted by value.

 * @example
 * ```ts
 * import type { Checkpoint } from "./checkpoint.ts";
 * declare const checkpoint: Checkpoint;
 * toFloat32(await checkpoint.read("emb.weight"), "BF16");
 * ```
 */
export function toFloat32(bytes: Uint8Array, dtype: DType, into?: Float32Array): Float32Array {
  const buf = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const n = buf.byteLength;
  if (into) {
    if (into.length * DTYPE_SIZE[dtype] !== n) {
      throw new RangeError(`toFloat32: ${n} bytes of ${dtype} into ${into.length} values`);
    }
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
      into.set(toFloat32(bytes, dtype));
      return into;
    }
  }
  switch (dtype) {
    case "F32": {
      const v = new Float32Array(buf.buffer, buf.byteOffset, n / 4);
      return into ? (into.set(v), into) : v.slice();
    }
    case "F16":
      return f16ToF32(new Uint16Array(buf.buffer, buf.byteOffset, n / 2), into);
    case "BF16":
      return bf16ToF32(new Uint16Array(buf.buffer, buf.byteOffset, n / 2), into);
    case "F64":
      return Float32Array.from(new Float64Array(buf.buffer, buf.byteOffset, n / 8));
    case "I64":
      return Float32Array.from(new BigInt64Array(buf.buffer, buf.byteOffset, n / 8), Number);
    case "I32":
      return Float32Array.from(new Int32Array(buf.buffer, buf.byteOffset, n / 4));
    case "I16":
      return Float32Array.from(new Int16Array(buf.buffer, buf.byteOffset, n / 2));
    case "I8":
      return Float32Array.from(new Int8Array(buf.buffer, buf.byteOffset, n));
    case "U8":
    case "BOOL":
      return Float32Array.from(buf);
  }
}

/** Encodes float32 values as raw little-endian bytes of a float dtype (F32, F16 or BF16). */
export function fromFloat32(values: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  switch (dtype) {
    case "F32":
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case "F16":
      return new Uint8Array(f32ToF16(values).buffer);
    case "BF16":
      return new Uint8Array(f32ToBf16(values).buffer);
  }
}
