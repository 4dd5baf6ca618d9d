/**
 * CRC-32 (the zip polynomial), slicing-by-8 so multi-GiB checkpoints hash at memory speed.
 * @module
 */

const TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let i = 1; i < 8; i++) {
    const prev = tables[i - 1], t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (prev[n] >>> 8) ^ t0[prev[n] & 0xff];
    tables.push(t);
  }
  return tables;
})();

/** Continues a CRC-32 over `data` (start with 0). */
export function crc32(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>>
      0;
    c = t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
      t3[data[i + 4]] ^ t2[data[i + 5]] ^ t1[data[i + 6]] ^ t0[data[i + 7]];
  }
  for (; i < n; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** `m` (32 columns over GF(2)) applied to the 32-bit vector `v`. */
function gf2Apply(m: Uint32Array, v: number): number {
  let r = 0;
  for (let i = 0; v !== 0; i++, v >>>= 1) if (v & 1) r ^= m[i];
  return r >>> 0;
}

/** `a · b` over GF(2): the operator that applies `b` then `a`. */
function gf2Multiply(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let i = 0; i < 32; i++) out[i] = gf2Apply(a, b[i]);
  return out;
}

/** The CRC register's change over one zero byte, as a GF(2) operator (the register is linear). */
const ZERO_BYTE: Uint32Array = (() => {
  const bit = new Uint32Array(32);
  bit[0] = 0xedb88320;
  for (let i = 1; i < 32; i++) bit[i] = 1 << (i - 1);
  let m: Uint32Array = bit;
  for (let k = 0; k < 3; k++) m = gf2Multiply(m, m); // 2^3 = 8 bits
  return m;
})();

/**
 * Continues a CRC-32 over `n` zero bytes without reading them: the register's step over a zero
 * byte is linear, so `n` of them is that operator to the power `n` (square and multiply, about
 * 35 squarings for 26 GB), as zlib's `crc32_combine` does. Equal to `crc32(new Uint8Array(n),
 * crc)`.
 */
export function crc32Zeros(n: number, crc = 0): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`crc32Zeros: bad length ${n}`);
  let c = ~crc >>> 0;
  let power = ZERO_BYTE;
  for (let k = n; k > 0; k = Math.floor(k / 2)) {
    if (k % 2 === 1) c = gf2Apply(power, c);
    if (k > 1) power = gf2Multiply(power, power);
  }
  return ~c >>> 0;
}
