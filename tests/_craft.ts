/**
 * The one place tests craft checkpoint bytes (the reader tests, the hostile tests, the fuzz
 * suite): zips (stored or deflated, lying or duplicated entries, any flags; or laid out as torch
 * writes them, aligned, with data descriptors and ZIP64), pickles opcode by opcode (the
 * {@link Pickle} builder, or raw pieces with {@link pickle}), SafeTensors headers written as text,
 * rwkv.cpp files, legacy torch files.
 * @module
 */

import { crc32 } from "../lib/formats/_crc32.ts";

const enc = new TextEncoder();

/** Bytes of a string of code points 0..255 (a pickle written as Python would show it). */
export const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Little-endian bytes of a 16-bit value. */
export const u16 = (n: number): number[] => [n & 255, (n >>> 8) & 255];
/** Little-endian bytes of a 32-bit value. */
export const u32 = (n: number): number[] => [...u16(n & 0xffff), ...u16(n >>> 16)];
/** Little-endian bytes of a 64-bit value. */
export const u64 = (n: number | bigint): number[] => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return [...b];
};

/** Joins byte arrays. */
export function concat(parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

/** Raw deflate of `data`. */
export async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** One zip entry to write. */
export interface ZipFile {
  name: string;
  data: Uint8Array;
  /** Deflate it (default: stored). */
  deflate?: boolean;
  /** General purpose flags written in both headers. */
  flags?: number;
  /** Sizes to declare instead of the true ones: [compressed, uncompressed]. */
  declare?: [number, number];
  /** Already deflated content (e.g. from {@link deflateZeros}) with its size and CRC-32. */
  deflated?: { body: Uint8Array; size: number; crc: number };
}

/** Options of {@link makeZip} for every entry. */
export interface ZipOptions {
  /** Deflate the entries given as `[name, data]` pairs. */
  deflate?: boolean;
  /** Sizes to declare, by entry name: `[compressed, uncompressed]`. */
  declare?: Record<string, [number, number]>;
}

/**
 * A zip archive of `files`, in order (duplicates allowed), with plain local headers; an entry is a
 * {@link ZipFile} or a `[name, data]` pair that takes `opt`'s settings.
 */
export async function makeZip(
  files: (ZipFile | [string, Uint8Array])[],
  opt: ZipOptions = {},
): Promise<Uint8Array> {
  const parts: ArrayLike<number>[] = [], central: number[] = [];
  let at = 0;
  const put = (b: ArrayLike<number>) => (parts.push(b), at += b.length);
  for (const entry of files) {
    const f: ZipFile = Array.isArray(entry)
      ? { name: entry[0], data: entry[1], deflate: opt.deflate, declare: opt.declare?.[entry[0]] }
      : entry;
    const body = f.deflated?.body ?? (f.deflate ? await deflateRaw(f.data) : f.data);
    const [csize, size] = f.declare ?? [body.length, f.deflated?.size ?? f.data.length];
    const n = enc.encode(f.name), method = f.deflate || f.deflated ? 8 : 0;
    const common = [...u16(f.flags ?? 0), ...u16(method), 0, 0, 0, 0];
    common.push(...u32(f.deflated?.crc ?? crc32(f.data)), ...u32(csize), ...u32(size));
    central.push(...u32(0x02014b50), ...u16(20), ...u16(20), ...common, ...u16(n.length));
    central.push(...u16(0), ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(at), ...n);
    put([...u32(0x04034b50), ...u16(20), ...common, ...u16(n.length), ...u16(0), ...n]);
    put(body);
  }
  const cdAt = at, k = files.length;
  put(central);
  put([...u32(0x06054b50), 0, 0, 0, 0, ...u16(k), ...u16(k)]);
  put([...u32(central.length), ...u32(cdAt), 0, 0]);
  return concat(parts);
}

/** Options of {@link makeTorchZip}. */
export interface TorchZipOptions {
  /** Compress entries with deflate. */
  deflate?: boolean;
  /** Write ZIP64 records and extra fields even though the archive is small. */
  zip64?: boolean;
}

/**
 * A zip as torch writes it: local headers padded so the data is 64-byte aligned (so the local
 * extra length differs from the central one), sizes in a data descriptor (flag bit 3), and
 * optionally ZIP64 records.
 */
export async function makeTorchZip(
  files: [string, Uint8Array][],
  opt: TorchZipOptions = {},
): Promise<Uint8Array> {
  const out: number[] = [];
  const central: number[] = [];
  for (const [name, data] of files) {
    const stored = opt.deflate ? await deflateRaw(data) : data;
    const n = enc.encode(name);
    const at = out.length;
    const pad = (64 - ((at + 30 + n.length + 4) % 64)) % 64;
    out.push(...u32(0x04034b50), ...u16(20), ...u16(8), ...u16(opt.deflate ? 8 : 0));
    out.push(0, 0, 0, 0, ...u32(0), ...u32(0), ...u32(0), ...u16(n.length));
    out.push(...u16(pad + 4), ...n, ...u16(0xcafe), ...u16(pad), ...new Array(pad).fill(0));
    out.push(...stored);
    const crc = crc32(data);
    out.push(...u32(0x08074b50), ...u32(crc), ...u32(stored.length), ...u32(data.length));
    const big = opt.zip64;
    const extra = big
      ? [...u16(1), ...u16(24), ...u64(data.length), ...u64(stored.length), ...u64(at)]
      : [];
    central.push(...u32(0x02014b50), ...u16(45), ...u16(45), ...u16(8));
    central.push(...u16(opt.deflate ? 8 : 0), 0, 0, 0, 0, ...u32(crc));
    central.push(...u32(big ? 0xffffffff : stored.length), ...u32(big ? 0xffffffff : data.length));
    central.push(...u16(n.length), ...u16(extra.length), ...u16(0), ...u16(0), ...u16(0));
    central.push(...u32(0), ...u32(big ? 0xffffffff : at), ...n, ...extra);
  }
  const cdAt = out.length;
  out.push(...central);
  const count = files.length;
  if (opt.zip64) {
    const recAt = out.length;
    out.push(...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0));
    out.push(...u64(count), ...u64(count), ...u64(central.length), ...u64(cdAt));
    out.push(...u32(0x07064b50), ...u32(0), ...u64(recAt), ...u32(1));
  }
  const sat = (n: number, max: number) => (opt.zip64 ? max : n);
  out.push(...u32(0x06054b50), 0, 0, 0, 0, ...u16(sat(count, 0xffff)), ...u16(sat(count, 0xffff)));
  out.push(...u32(sat(central.length, 0xffffffff)), ...u32(sat(cdAt, 0xffffffff)), 0, 0);
  return new Uint8Array(out);
}

/** Protocol-2 pickle bytes from pieces: numbers and arrays are raw bytes, strings BINUNICODE. */
export function pickle(...parts: (number | string | number[])[]): Uint8Array {
  const b: number[] = [0x80, 2];
  for (const p of parts) {
    if (typeof p === "number") b.push(p);
    else if (Array.isArray(p)) { for (const x of p) b.push(x); }
    else {
      const e = enc.encode(p);
      b.push(0x58, ...u32(e.length), ...e);
    }
  }
  return new Uint8Array(b);
}

/** The bytes of `GLOBAL module\nname\n`, for {@link pickle}. */
export const globalOp = (module: string, name: string): number[] => [
  0x63,
  ...enc.encode(`${module}\n${name}\n`),
];

/** A pickle written opcode by opcode (protocol 2 header included). */
export class Pickle {
  readonly b: number[] = [0x80, 2];
  /** Raw opcodes or bytes. */
  op(...x: number[]): this {
    for (const v of x) this.b.push(v);
    return this;
  }
  /** BINUNICODE. */
  str(s: string): this {
    const e = enc.encode(s);
    this.op(0x58, ...u32(e.length));
    for (const v of e) this.b.push(v);
    return this;
  }
  /** BININT (or BININT1 for small values). */
  int(n: number): this {
    return n >= 0 && n < 256 ? this.op(0x4b, n) : this.op(0x4a, ...u32(n >>> 0));
  }
  /** A text INT line (`I<text>\n`), or a text LONG (`L<text>\n`) when `text` starts with L. */
  textInt(text: string): this {
    return text.startsWith("L")
      ? this.op(0x4c, ...enc.encode(text.slice(1) + "\n"))
      : this.op(0x49, ...enc.encode(text + "\n"));
  }
  /** BINFLOAT. */
  float(x: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false);
    return this.op(0x47, ...b);
  }
  /** GLOBAL module\nname\n */
  global(module: string, name: string): this {
    return this.op(0x63, ...enc.encode(`${module}\n${name}\n`));
  }
  /** A tuple of ints. */
  ints(xs: readonly number[]): this {
    this.op(0x28);
    for (const x of xs) this.int(x);
    return this.op(0x74);
  }
  /** An empty OrderedDict. */
  dict(): this {
    return this.global("collections", "OrderedDict").op(0x29, 0x52);
  }
  /**
   * A `_rebuild_tensor_v2` call left on the stack; `pid` may override the persistent id's
   * items after "storage" (default: FloatStorage, key, "cpu", numel).
   */
  tensor(t: CraftTensor): this {
    this.global("torch._utils", "_rebuild_tensor_v2").op(0x28);
    this.op(0x28).str("storage").global("torch", t.storage ?? "FloatStorage").str(t.key);
    this.str("cpu");
    if (t.numelText !== undefined) this.textInt(t.numelText);
    else this.int(t.numel);
    if (t.view) this.op(0x28).str(`${t.key}v`).int(t.view[0]).int(t.view[1]).op(0x74);
    else if (t.legacyView !== undefined) this.op(0x4e);
    this.op(0x74, 0x51);
    if (t.offsetText !== undefined) this.textInt(t.offsetText);
    else this.int(t.offset ?? 0);
    this.ints(t.shape).ints(t.stride ?? contiguous(t.shape));
    return this.op(0x89).dict().op(0x74, 0x52);
  }
  /** `{name: tensor, …}` as an OrderedDict filled by SETITEMS. */
  stateDict(tensors: Record<string, CraftTensor>): this {
    this.dict().op(0x28);
    for (const [name, t] of Object.entries(tensors)) this.str(name).tensor(t);
    return this.op(0x75);
  }
  /** The pickle, STOP appended. */
  done(): Uint8Array {
    return Uint8Array.from([...this.b, 0x2e]);
  }
}

/** A tensor for {@link Pickle.tensor}. */
export interface CraftTensor {
  storage?: string;
  key: string;
  numel: number;
  shape: number[];
  stride?: number[];
  offset?: number;
  /** Write the storage offset as a text INT with this text. */
  offsetText?: string;
  /** Write numel as a text INT with this text. */
  numelText?: string;
  /** Append a None view (legacy persistent ids have six items). */
  legacyView?: null;
  /** Legacy view metadata: (offset, size) in elements of the root storage. */
  view?: [number, number];
}

/** C-contiguous strides of `shape`. */
export function contiguous(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let n = 1;
  for (let d = shape.length - 1; d >= 0; d--) (s[d] = n, n *= shape[d]);
  return s;
}

/** A torch zip: `archive/data.pkl`, `archive/version` and `archive/data/<key>` per storage. */
export function torchZip(
  pkl: Uint8Array,
  storages: Record<string, Uint8Array>,
  opt: { deflate?: boolean } = {},
): Promise<Uint8Array> {
  return makeZip([
    { name: "archive/data.pkl", data: pkl, deflate: opt.deflate },
    { name: "archive/version", data: enc.encode("3\n") },
    ...Object.entries(storages).map(([k, data]) => ({
      name: `archive/data/${k}`,
      data,
      deflate: opt.deflate,
    })),
  ]);
}

/** A SafeTensors file from header text (written as is) and data bytes. */
export function safetensorsFromText(header: string, data: Uint8Array): Uint8Array {
  const h = enc.encode(header);
  return concat([u64(h.length), h, data]);
}

/** One rwkv.cpp tensor: FP32 values, dims in ggml order. */
export interface CppTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** An rwkv.cpp file (version 101, FP32) of `tensors`. */
export function rwkvCppFile(
  tensors: CppTensor[],
  head = { vocab: 4, embd: 4, layers: 1 },
): Uint8Array {
  const parts: ArrayLike<number>[] = [
    [...u32(0x67676d66), ...u32(101), ...u32(head.vocab), ...u32(head.embd), ...u32(head.layers)],
    u32(0),
  ];
  for (const t of tensors) {
    const n = enc.encode(t.name);
    parts.push([...u32(t.dims.length), ...u32(n.length), ...u32(0)]);
    parts.push(t.dims.flatMap(u32), n, new Uint8Array(t.data.buffer));
  }
  return concat(parts);
}

/**
 * A legacy (pre-1.6) torch file: the magic number pickle (or `magic`), protocol, sys info, the
 * `main` pickle, storage keys, then each storage's data.
 */
export function legacyFile(
  main: Uint8Array,
  storages: [string, number, Uint8Array][] = [],
  magic: Uint8Array = LEGACY_MAGIC,
): Uint8Array {
  const proto = new Pickle().op(0x4d, ...u16(1001)).done();
  const sys = new Pickle().op(0x7d, 0x28).str("protocol_version").op(0x4d, ...u16(1001))
    .str("little_endian").op(0x88, 0x75).done();
  const keys = new Pickle().op(0x5d, 0x28);
  for (const [k] of storages) keys.str(k);
  const parts: ArrayLike<number>[] = [magic, proto, sys, main, keys.op(0x65).done()];
  for (const [, numel, data] of storages) parts.push(u64(numel), data);
  return concat(parts);
}

/** Little-endian bytes of float32 values. */
export function f32(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** The legacy format's magic number pickle (LONG1 0x1950a86a20f9469cfc6c). */
export const LEGACY_MAGIC: Uint8Array = new Pickle()
  .op(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).done();

/** Little-endian bytes of a typed array (a copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

/** A seeded generator (the one in testing/random.ts). */
export { rng } from "../testing/random.ts";

/**
 * A raw deflate stream of `zeros` zero bytes then `tail`, written directly with fixed Huffman
 * codes (a literal 0, then copies of 258 bytes at distance 1): a gigabyte costs a few MB and
 * no compressor time.
 */
export function deflateZeros(zeros: number, tail: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(Math.ceil(zeros / 258 * 13 / 8) + tail.length * 2 + 300);
  let bit = 0;
  const bits = (v: number, n: number) => { // LSB first
    for (let i = 0; i < n; i++, bit++) if ((v >>> i) & 1) out[bit >>> 3] |= 1 << (bit & 7);
  };
  const huff = (code: number, n: number) => { // Huffman codes go MSB first
    for (let i = n - 1; i >= 0; i--, bit++) if ((code >>> i) & 1) out[bit >>> 3] |= 1 << (bit & 7);
  };
  const literal = (v: number) => v < 144 ? huff(0x30 + v, 8) : huff(0x190 + v - 144, 9);
  bits(1, 1); // BFINAL
  bits(1, 2); // fixed Huffman
  let left = zeros;
  if (left > 0) (literal(0), left--);
  while (left >= 258) {
    huff(0xc5, 8); // length code 285 (258 bytes)
    huff(0, 5); // distance code 0 (distance 1)
    left -= 258;
  }
  for (; left > 0; left--) literal(0);
  for (const b of tail) literal(b);
  huff(0, 7); // end of block
  return out.slice(0, Math.ceil(bit / 8));
}
