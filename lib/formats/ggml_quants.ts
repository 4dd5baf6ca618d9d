/**
 * ggml's tensor types: their codes, block sizes, decoding to float32 exactly as ggml (and
 * gguf-py's `quants.py`, which equals it bit for bit) decodes them, exact re-packings of the
 * 32-value types onto our q8/q4 layouts, and ggml's reference quantizers of Q8_0 and Q4_0 for the
 * GGUF writer. All arithmetic is float32: every product and sum is rounded to float32 as the C
 * code rounds it.
 *
 * Block layouts (little-endian; `d`, `m`, `dmin` are IEEE halves):
 * - Q4_0 (32 values, 18 bytes): d, qs[16]; value j = (low nibble of qs[j] − 8)·d, value j+16 =
 *   (high nibble − 8)·d.
 * - Q4_1 (32, 20): d, m, qs[16]; value = q·d + m.
 * - Q5_0 (32, 22): d, qh (uint32: bit j is the fifth bit of value j), qs[16]; value = (q − 16)·d.
 * - Q5_1 (32, 24): d, m, qh, qs[16]; value = q·d + m.
 * - Q8_0 (32, 34): d, qs[32] (int8); value = q·d.
 * - Q4_K (256, 144): d, dmin, scales[12] (eight 6-bit scales and mins), qs[128]; sub-block s of
 *   32 has scale d·sc[s] and min dmin·m[s]; value = (d·sc)·q − dmin·m; byte l of the 32-byte
 *   chunk c holds sub-block 2c's value l (low nibble) and sub-block 2c+1's (high nibble).
 * - Q5_K (256, 176): d, dmin, scales[12], qh[32], qs[128]; as Q4_K with bit s of qh[l] the fifth
 *   bit of sub-block s's value l.
 * - Q6_K (256, 210): ql[128], qh[64], scales[16] (int8, one per 16 values), d; value =
 *   (d·sc)·(q − 32); in each half h of 128 values, value 32g + l (g = 0..3) has its low four bits
 *   from ql[64h + l + 32·(g & 1)] (low nibble for g < 2, high for g ≥ 2) and its top two from
 *   qh[32h + l] >> 2g.
 * @module
 */

import { f16ToF32, floatToHalf } from "./dtype.ts";
import { LoadSimd } from "./simd.ts";

/** One ggml type: its name, values per block and bytes per block. */
export interface GgmlType {
  readonly name: string;
  readonly blockValues: number;
  readonly blockBytes: number;
  /** True when {@link dequantizeGgmlType} decodes it. */
  readonly decoded: boolean;
}

/** ggml type codes (`enum ggml_type`) → what we know of them. */
export const GGML_TYPES: Readonly<Record<number, GgmlType>> = {
  0: { name: "F32", blockValues: 1, blockBytes: 4, decoded: true },
  1: { name: "F16", blockValues: 1, blockBytes: 2, decoded: true },
  2: { name: "Q4_0", blockValues: 32, blockBytes: 18, decoded: true },
  3: { name: "Q4_1", blockValues: 32, blockBytes: 20, decoded: true },
  6: { name: "Q5_0", blockValues: 32, blockBytes: 22, decoded: true },
  7: { name: "Q5_1", blockValues: 32, blockBytes: 24, decoded: true },
  8: { name: "Q8_0", blockValues: 32, blockBytes: 34, decoded: true },
  9: { name: "Q8_1", blockValues: 32, blockBytes: 36, decoded: false },
  10: { name: "Q2_K", blockValues: 256, blockBytes: 84, decoded: false },
  11: { name: "Q3_K", blockValues: 256, blockBytes: 110, decoded: false },
  12: { name: "Q4_K", blockValues: 256, blockBytes: 144, decoded: true },
  13: { name: "Q5_K", blockValues: 256, blockBytes: 176, decoded: true },
  14: { name: "Q6_K", blockValues: 256, blockBytes: 210, decoded: true },
  15: { name: "Q8_K", blockValues: 256, blockBytes: 292, decoded: false },
  16: { name: "IQ2_XXS", blockValues: 256, blockBytes: 66, decoded: false },
  17: { name: "IQ2_XS", blockValues: 256, blockBytes: 74, decoded: false },
  18: { name: "IQ3_XXS", blockValues: 256, blockBytes: 98, decoded: false },
  19: { name: "IQ1_S", blockValues: 256, blockBytes: 50, decoded: false },
  20: { name: "IQ4_NL", blockValues: 32, blockBytes: 18, decoded: false },
  21: { name: "IQ3_S", blockValues: 256, blockBytes: 110, decoded: false },
  22: { name: "IQ2_S", blockValues: 256, blockBytes: 82, decoded: false },
  23: { name: "IQ4_XS", blockValues: 256, blockBytes: 136, decoded: false },
  24: { name: "I8", blockValues: 1, blockBytes: 1, decoded: false },
  25: { name: "I16", blockValues: 1, blockBytes: 2, decoded: false },
  26: { name: "I32", blockValues: 1, blockBytes: 4, decoded: false },
  27: { name: "I64", blockValues: 1, blockBytes: 8, decoded: false },
  28: { name: "F64", blockValues: 1, blockBytes: 8, decoded: false },
  29: { name: "IQ1_M", blockValues: 256, blockBytes: 56, decoded: false },
  30: { name: "BF16", blockValues: 1, blockBytes: 2, decoded: true },
  34: { name: "TQ1_0", blockValues: 256, blockBytes: 54, decoded: false },
  35: { name: "TQ2_0", blockValues: 256, blockBytes: 66, decoded: false },
  39: { name: "MXFP4", blockValues: 32, blockBytes: 17, decoded: false },
};

/** ggml type codes by name, for the ones this toolkit reads or writes. */
export const GGML = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;

/** The name of a type code (`type 99` when unknown). */
export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

const f = Math.fround;

let halves: Float32Array | undefined;

/** float32 value of the IEEE half at `o` (a table of all 65536). */
function half(b: Uint8Array, o: number): number {
  halves ??= f16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return halves[b[o] | (b[o + 1] << 8)];
}

/** Q4_K/Q5_K's scale and min of sub-block `j` from their 12 packed bytes at `o`. */
function scaleMinK4(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j] & 63, b[o + j + 4] & 63];
  return [
    (b[o + j + 4] & 0xf) | ((b[o + j - 4] >> 6) << 4),
    (b[o + j + 4] >> 4) | ((b[o + j] >> 6) << 4),
  ];
}

/**
 * Decodes `count` values of ggml type `type` from `raw` into `out` (float32), exactly as ggml's
 * `dequantize_row_*` (and gguf-py) decode them. `count` must be whole blocks.
 * @example
 * ```ts
 * const raw = quantizeQ8_0(new Float32Array(64).fill(0.5)); // two Q8_0 blocks
 * const v = dequantizeGgmlType(raw, GGML.Q8_0, 64, new Float32Array(64));
 * ```
 */
export function dequantizeGgmlType(
  raw: Uint8Array,
  type: number,
  count: number,
  out: Float32Array = new Float32Array(count),
): Float32Array {
  const t = GGML_TYPES[type];
  if (!t?.decoded) throw new RangeError(`ggml type ${ggmlTypeName(type)} is not decoded`);
  if (count % t.blockValues !== 0 || raw.length < (count / t.blockValues) * t.blockBytes) {
    throw new RangeError(`${count} values of ${t.name} need whole blocks`);
  }
  const nb = count / t.blockValues, size = t.blockBytes;
  switch (type) {
    case GGML.F32:
      out.set(new Float32Array(raw.slice(0, count * 4).buffer));
      return out;
    case GGML.F16:
      return f16ToF32(new Uint16Array(raw.slice(0, count * 2).buffer), out);
    case GGML.BF16: {
      const u = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) u[i] = (raw[2 * i] << 16) | (raw[2 * i + 1] << 24);
      return out;
    }
    case GGML.Q4_0:
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 32, d = half(raw, o);
        for (let j = 0; j < 16; j++) {
          const q = raw[o + 2 + j];
          out[y + j] = ((q & 15) - 8) * d;
          out[y + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      return out;
    case GGML.Q4_1:
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 32, d = half(raw, o), m = half(raw, o + 2);
        for (let j = 0; j < 16; j++) {
          const q = raw[o + 4 + j];
          out[y + j] = f((q & 15) * d) + m;
          out[y + j + 16] = f((q >> 4) * d) + m;
        }
      }
      return out;
    case GGML.Q5_0:
    case GGML.Q5_1: {
      const one = type === GGML.Q5_1, qo = one ? 8 : 6;
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 32, d = half(raw, o), m = one ? half(raw, o + 2) : 0;
        const h = qo - 4;
        const qh = (raw[o + h] | (raw[o + h + 1] << 8) | (raw[o + h + 2] << 16) |
          (raw[o + h + 3] << 24)) >>> 0;
        for (let j = 0; j < 16; j++) {
          const q = raw[o + qo + j];
          const lo = (q & 15) | (((qh >>> j) & 1) << 4);
          const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          if (one) {
            out[y + j] = f(lo * d) + m;
            out[y + j + 16] = f(hi * d) + m;
          } else {
            out[y + j] = (lo - 16) * d;
            out[y + j + 16] = (hi - 16) * d;
          }
        }
      }
      return out;
    }
    case GGML.Q8_0:
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 32, d = half(raw, o);
        for (let j = 0; j < 32; j++) out[y + j] = ((raw[o + 2 + j] << 24) >> 24) * d;
      }
      return out;
    case GGML.Q4_K:
    case GGML.Q5_K: {
      const five = type === GGML.Q5_K, qs = five ? 48 : 16;
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 256, d = half(raw, o), dmin = half(raw, o + 2);
        for (let s = 0; s < 8; s++) {
          const [sc, mn] = scaleMinK4(raw, o + 4, s);
          const d1 = f(d * sc), m1 = f(dmin * mn);
          const chunk = o + qs + (s >> 1) * 32, shift = (s & 1) * 4;
          for (let l = 0; l < 32; l++) {
            let q = (raw[chunk + l] >> shift) & 15;
            if (five) q |= ((raw[o + 16 + l] >> s) & 1) << 4;
            out[y + s * 32 + l] = f(d1 * q) - m1;
          }
        }
      }
      return out;
    }
    case GGML.Q6_K:
      for (let b = 0; b < nb; b++) {
        const o = b * size, y = b * 256, d = half(raw, o + 208);
        for (let h = 0; h < 2; h++) {
          for (let g = 0; g < 4; g++) {
            for (let l = 0; l < 32; l++) {
              const i = 128 * h + 32 * g + l;
              const lowByte = raw[o + 64 * h + l + 32 * (g & 1)];
              const low = g < 2 ? lowByte & 15 : lowByte >> 4;
              const top = (raw[o + 128 + 32 * h + l] >> (2 * g)) & 3;
              const sc = (raw[o + 192 + (i >> 4)] << 24) >> 24;
              out[y + i] = f(f(d * sc) * ((low | (top << 4)) - 32));
            }
          }
        }
      }
      return out;
  }
  throw new RangeError(`ggml type ${t.name} is not decoded`);
}

/**
 * Whether a type's values are exactly q·d with q an integer in −128..127 and one scale per 32
 * consecutive values (our q8 layout): Q8_0, Q4_0 (q − 8) and Q5_0 (q − 16).
 */
export function mapsOntoQ8(type: number): boolean {
  return type === GGML.Q8_0 || type === GGML.Q4_0 || type === GGML.Q5_0;
}

/**
 * The block scales of `count` values of Q8_0, Q4_0 or Q5_0 (the half at the start of each
 * block) into `scales`, times `mul` (a power of two: exact).
 */
export function blockScales(
  raw: Uint8Array,
  type: number,
  count: number,
  scales: Float32Array,
  mul = 1,
): void {
  const nb = count / 32, size = GGML_TYPES[type].blockBytes;
  for (let b = 0; b < nb; b++) scales[b] = half(raw, b * size) * mul;
}

/**
 * Copies `words` little-endian u32 from each block of `raw` (block `b` at `b·size + skip`) to
 * `dst` (block `b` at `b·words·4`): the integers of a block without its scale.
 */
function copyBlocks(raw: Uint8Array, size: number, skip: number, words: number, dst: Uint8Array) {
  const nb = dst.length / (words * 4);
  const src = new DataView(raw.buffer, raw.byteOffset, raw.length);
  if (dst.byteOffset % 4 === 0) {
    const out = new Uint32Array(dst.buffer, dst.byteOffset, nb * words);
    for (let b = 0, o = skip, y = 0; b < nb; b++, o += size) {
      for (let w = 0; w < words; w++) out[y++] = src.getUint32(o + 4 * w, true);
    }
  } else {
    for (let b = 0; b < nb; b++) {
      dst.set(raw.subarray(b * size + skip, b * size + skip + words * 4), b * words * 4);
    }
  }
}

/**
 * Re-packs the integers of `count` values of Q8_0, Q4_0 or Q5_0 into our q8 layout, exactly
 * (Q8_0's q as they are, Q4_0's q − 8, Q5_0's q − 16); the scales are {@link blockScales}.
 */
export function toQ8(raw: Uint8Array, type: number, count: number, q: Int8Array): void {
  const nb = count / 32, size = GGML_TYPES[type].blockBytes;
  if (type === GGML.Q8_0) {
    copyBlocks(raw, size, 2, 8, new Uint8Array(q.buffer, q.byteOffset, count));
    return;
  }
  for (let b = 0; b < nb; b++) {
    const o = b * size, y = b * 32;
    if (type === GGML.Q4_0) {
      for (let j = 0; j < 16; j++) {
        const v = raw[o + 2 + j];
        q[y + j] = (v & 15) - 8;
        q[y + j + 16] = (v >> 4) - 8;
      }
    } else {
      const qh = (raw[o + 2] | (raw[o + 3] << 8) | (raw[o + 4] << 16) | (raw[o + 5] << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const v = raw[o + 6 + j];
        q[y + j] = ((v & 15) | (((qh >>> j) & 1) << 4)) - 16;
        q[y + j + 16] = ((v >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16;
      }
    }
  }
}

/**
 * Re-packs the nibbles of `count` values of Q4_0 into our q4 layout (the same bytes, ggml's
 * order: 16 a block); the scales are {@link blockScales}.
 */
export function toQ4(raw: Uint8Array, count: number, q: Uint8Array): void {
  copyBlocks(raw, 18, 2, 4, q.subarray(0, count / 2));
}

/** Bytes of ggml blocks {@link BlockSplitter} reads at once. */
const SPLIT_CHUNK = 4 << 20;

/**
 * Reads Q8_0/Q4_0 tensors into our q8/q4 layout (the integers as they are, the f16 scales as
 * f32) in WebAssembly SIMD ({@link LoadSimd}). When the destination is a view of a WebAssembly
 * memory the helpers know (an arena's), each chunk of blocks is read straight into the
 * destination where its integers go and taken apart there, in place (a chunk's blocks are 34/32
 * of its integers: they spill into the next chunk's room, read later); else, and for the last
 * blocks, a chunk is read into the splitter's own scratch and its integers copied.
 * @example
 * ```ts
 * declare const raw: (into: Uint8Array, offset: number) => Promise<Uint8Array>; // the tensor's bytes
 * const q = new Int8Array(1024), scales = new Float32Array(32);
 * if (BlockSplitter.supported) {
 *   await new BlockSplitter().read(raw, GGML.Q8_0, 1024, new Uint8Array(q.buffer), scales);
 * }
 * ```
 */
export class BlockSplitter {
  #simd: LoadSimd | undefined;

  /** Whether this runtime has the SIMD helpers (else use {@link toQ8}/{@link blockScales}). */
  static get supported(): boolean {
    return LoadSimd.supported;
  }

  /**
   * Reads `count` values of Q8_0 or Q4_0 through `raw` (bytes of the stored tensor from
   * `offset` into `into`): integers into `out`, scales times `mul` (a power of two) into
   * `scales`.
   */
  async read(
    raw: (into: Uint8Array, offset: number) => Promise<Uint8Array>,
    type: number,
    count: number,
    out: Uint8Array,
    scales: Float32Array,
    mul = 1,
  ): Promise<void> {
    const size = GGML_TYPES[type].blockBytes, ints = size - 2, nb = count / 32;
    if (type !== GGML.Q8_0 && type !== GGML.Q4_0) throw new RangeError(`not Q8_0/Q4_0: ${type}`);
    const per = Math.max(1, Math.floor(SPLIT_CHUNK / size));
    const inPlace = LoadSimd.forBuffer(out.buffer);
    for (let b0 = 0; b0 < nb;) {
      // blocks whose raw bytes fit in `out` from where their integers go
      const fit = Math.min(per, Math.floor(((nb - b0) * ints) / size));
      if (inPlace && fit > 0) {
        const at = b0 * ints;
        await raw(out.subarray(at, at + fit * size), b0 * size);
        inPlace.reserve(fit * 4);
        inPlace.compactBlocks(out.byteOffset + at, fit, size, 0, mul);
        scales.set(inPlace.floats(0, fit), b0);
        b0 += fit;
        continue;
      }
      const k = Math.min(per, nb - b0);
      const q = Math.ceil((per * size) / 64) * 64, s = q + per * ints;
      const simd = this.#simd ??= LoadSimd.create()!;
      simd.reserve(s + per * 4); // before the read into the scratch: it does not move during it
      await raw(simd.bytes(0, k * size), b0 * size);
      simd.splitBlocks(0, k, size, q, s, mul);
      out.set(simd.bytes(q, k * ints), b0 * ints);
      scales.set(simd.floats(s, k), b0);
      b0 += k;
    }
  }

  /** Lets the scratch go (a later read makes a new one). */
  release(): void {
    this.#simd = undefined;
  }
}

/** C's `roundf`: halves away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * ggml's `quantize_row_q8_0_ref`: per block of 32, d = max|x| / 127 (float32), q = roundf(x/d)
 * computed as x·(1/d) in float32, d stored as an IEEE half. `values.length` must be whole blocks.
 * @example
 * ```ts
 * const blocks = quantizeQ8_0(new Float32Array(64)); // 68 bytes
 * ```
 */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const nb = values.length / 32, out = new Uint8Array(nb * 34);
  for (let b = 0; b < nb; b++) {
    const x = b * 32, o = b * 34;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[x + j]));
    const d = f(amax / 127), id = d ? f(1 / d) : 0;
    const h = floatToHalf(d);
    out[o] = h & 255;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 32; j++) out[o + 2 + j] = roundf(f(values[x + j] * id)) & 255;
  }
  return out;
}

/**
 * ggml's Q4_0 reference quantizer as gguf-py computes it: d = m / −8 with m the value of largest
 * magnitude (the first such), q = min(15, trunc(x·(1/d) + 8.5)) with the product and sum in
 * float64 (what the C code gets with a fused multiply-add), d stored as an IEEE half.
 * @example
 * ```ts
 * const blocks = quantizeQ4_0(new Float32Array(64)); // 36 bytes
 * ```
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const nb = values.length / 32, out = new Uint8Array(nb * 18);
  for (let b = 0; b < nb; b++) {
    const x = b * 32, o = b * 18;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = values[x + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8), id = d ? f(1 / d) : 0;
    const h = floatToHalf(d);
    out[o] = h & 255;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.max(0, Math.trunc(values[x + j] * id + 8.5)));
      const hi = Math.min(15, Math.max(0, Math.trunc(values[x + j + 16] * id + 8.5)));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}
