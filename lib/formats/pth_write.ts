/**
 * Writes PyTorch zip checkpoints (`torch.save` layout, read back by `torch.load`): a protocol-2
 * pickle of an OrderedDict of tensors rebuilt by `torch._utils._rebuild_tensor_v2`, one stored
 * (uncompressed) zip entry per storage with its data 64-byte aligned, and ZIP64 records where
 * the archive passes 4 GiB. Used to make large test and benchmark checkpoints without Python.
 * @module
 */

import { type DType, DTYPE_SIZE } from "./checkpoint.ts";
import { crc32 } from "./_crc32.ts";
import { writeAll, writeAtomic } from "./file.ts";
import { emitTensor } from "./_emit.ts";
import type { TensorToWrite } from "./checkpoint.ts";

const STORAGE: Record<DType, string> = {
  F64: "DoubleStorage",
  F32: "FloatStorage",
  F16: "HalfStorage",
  BF16: "BFloat16Storage",
  I64: "LongStorage",
  I32: "IntStorage",
  I16: "ShortStorage",
  I8: "CharStorage",
  U8: "ByteStorage",
  BOOL: "BoolStorage",
};

class PickleWriter {
  #parts: number[] = [];
  #enc = new TextEncoder();
  op(...bytes: number[]) {
    this.#parts.push(...bytes);
  }
  ascii(s: string) {
    for (const b of this.#enc.encode(s)) this.#parts.push(b);
  }
  global(module: string, name: string) {
    this.op(0x63); // GLOBAL
    this.ascii(`${module}\n${name}\n`);
  }
  str(s: string) {
    const b = this.#enc.encode(s);
    this.op(0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, b.length >>> 24);
    for (const x of b) this.#parts.push(x);
  }
  int(n: number) {
    if (n >= 0 && n < 256) this.op(0x4b, n); // BININT1
    else if (n >= 0 && n < 65536) this.op(0x4d, n & 255, n >> 8); // BININT2
    else if (n >= -(2 ** 31) && n < 2 ** 31) {
      this.op(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255); // BININT
    } else {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
      this.op(0x8a, 8, ...b); // LONG1
    }
  }
  tuple(items: number[]) {
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    this.op(0x74); // TUPLE
  }
  bytes(): Uint8Array {
    return new Uint8Array(this.#parts);
  }
}

/** The pickle `torch.save` writes for an OrderedDict of contiguous tensors. */
function statePickle(tensors: readonly TensorToWrite[]): Uint8Array {
  const p = new PickleWriter();
  p.op(0x80, 2); // PROTO 2
  p.global("collections", "OrderedDict");
  p.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE → OrderedDict()
  p.op(0x28); // MARK
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    p.str(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op(0x28); // MARK (args)
    // persistent id ('storage', torch.XStorage, key, 'cpu', numel)
    p.op(0x28);
    p.str("storage");
    p.global("torch", STORAGE[t.dtype]);
    p.str(String(i));
    p.str("cpu");
    p.int(numel);
    p.op(0x74, 0x51); // TUPLE, BINPERSID
    p.int(0); // storage offset
    p.tuple([...t.shape]);
    p.tuple(strides);
    p.op(0x89); // requires_grad False
    p.global("collections", "OrderedDict");
    p.op(0x29, 0x52); // backward hooks: OrderedDict()
    p.op(0x74, 0x52); // TUPLE, REDUCE
  });
  p.op(0x75, 0x2e); // SETITEMS, STOP
  return p.bytes();
}

interface Entry {
  name: Uint8Array;
  offset: number; // of the local header
  size: number;
  crc: number;
}

const LIMIT = 0xffffffff;

/** Local header for a stored entry; data begins 64-byte aligned (as torch writes). */
function localHeader(name: Uint8Array, at: number, size: number, crc: number): Uint8Array {
  const zip64 = size >= LIMIT || at >= LIMIT;
  const fixed = 30 + name.length + (zip64 ? 20 : 0);
  const pad = (64 - ((at + fixed + 4) % 64)) % 64;
  const extraLen = (zip64 ? 20 : 0) + 4 + pad;
  const h = new Uint8Array(30 + name.length + extraLen);
  const v = new DataView(h.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(4, zip64 ? 45 : 20, true);
  v.setUint16(8, 0, true); // stored
  v.setUint16(12, 0x21, true); // 1980-01-01
  v.setUint32(14, crc, true);
  v.setUint32(18, zip64 ? LIMIT : size, true);
  v.setUint32(22, zip64 ? LIMIT : size, true);
  v.setUint16(26, name.length, true);
  v.setUint16(28, extraLen, true);
  h.set(name, 30);
  let o = 30 + name.length;
  if (zip64) {
    v.setUint16(o, 0x0001, true);
    v.setUint16(o + 2, 16, true);
    v.setBigUint64(o + 4, BigInt(size), true);
    v.setBigUint64(o + 12, BigInt(size), true);
    o += 20;
  }
  v.setUint16(o, 0xcafe, true); // padding field, as PyTorch's writer uses
  v.setUint16(o + 2, pad, true);
  return h;
}

function centralDirectory(entries: Entry[], cdStart: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const big = e.size >= LIMIT || e.offset >= LIMIT;
    const h = new Uint8Array(46 + e.name.length + (big ? 28 : 0));
    const v = new DataView(h.buffer);
    v.setUint32(0, 0x02014b50, true);
    v.setUint16(4, 45, true);
    v.setUint16(6, big ? 45 : 20, true);
    v.setUint16(14, 0x21, true);
    v.setUint32(16, e.crc, true);
    v.setUint32(20, big ? LIMIT : e.size, true);
    v.setUint32(24, big ? LIMIT : e.size, true);
    v.setUint16(28, e.name.length, true);
    v.setUint16(30, big ? 28 : 0, true);
    v.setUint32(42, big ? LIMIT : e.offset, true);
    h.set(e.name, 46);
    if (big) {
      const o = 46 + e.name.length;
      v.setUint16(o, 0x0001, true);
      v.setUint16(o + 2, 24, true);
      v.setBigUint64(o + 4, BigInt(e.size), true);
      v.setBigUint64(o + 12, BigInt(e.size), true);
      v.setBigUint64(o + 20, BigInt(e.offset), true);
    }
    parts.push(h);
  }
  const cdSize = parts.reduce((a, p) => a + p.length, 0);
  const needs64 = cdStart + cdSize >= LIMIT || entries.length >= 0xffff;
  const tail = new Uint8Array((needs64 ? 56 + 20 : 0) + 22);
  const v = new DataView(tail.buffer);
  let o = 0;
  if (needs64) {
    v.setUint32(0, 0x06064b50, true); // ZIP64 end of central directory record
    v.setBigUint64(4, 44n, true);
    v.setUint16(12, 45, true);
    v.setUint16(14, 45, true);
    v.setBigUint64(24, BigInt(entries.length), true);
    v.setBigUint64(32, BigInt(entries.length), true);
    v.setBigUint64(40, BigInt(cdSize), true);
    v.setBigUint64(48, BigInt(cdStart), true);
    v.setUint32(56, 0x07064b50, true); // locator
    v.setBigUint64(64, BigInt(cdStart + cdSize), true);
    v.setUint32(72, 1, true);
    o = 76;
  }
  v.setUint32(o, 0x06054b50, true);
  v.setUint16(o + 8, Math.min(entries.length, 0xffff), true);
  v.setUint16(o + 10, Math.min(entries.length, 0xffff), true);
  v.setUint32(o + 12, needs64 ? LIMIT : cdSize, true);
  v.setUint32(o + 16, needs64 ? LIMIT : cdStart, true);
  const out = new Uint8Array(cdSize + tail.length);
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  out.set(tail, p);
  return out;
}

/**
 * Options of {@link writePth}.
 * @example
 * ```ts
 * import type { TensorToWrite } from "./checkpoint.ts";
 * declare const tensors: TensorToWrite[];
 * await writePth("out.pth", tensors, { prefix: "model", overwrite: true });
 * ```
 */
export interface WritePthOptions {
  /** Folder name inside the archive (torch uses the file's stem; default `archive`). */
  prefix?: string;
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
  /** Called as bytes are written: done and total bytes, and the tensor being written. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * Writes `tensors` as a PyTorch zip checkpoint (`torch.load` reads it), streaming one tensor at
 * a time into a temporary file renamed into place.
 * @example
 * ```ts
 * const bytes = new Uint8Array(new Float32Array([1, 2]).buffer);
 * await writePth("tiny.pth", [{ name: "w", dtype: "F32", shape: [2], data: () => bytes }]);
 * ```
 */
export async function writePth(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WritePthOptions = {},
): Promise<void> {
  const prefix = options.prefix ?? "archive";
  const enc = new TextEncoder();
  const total = tensors.reduce(
    (a, t) => a + t.shape.reduce((x, y) => x * y, 1) * DTYPE_SIZE[t.dtype],
    0,
  );
  await writeAtomic(path, async (file) => {
    const entries: Entry[] = [];
    let at = 0;
    async function entry(name: string, size: number, fill: (at: number) => Promise<number>) {
      const n = enc.encode(`${prefix}/${name}`);
      const h = localHeader(n, at, size, 0);
      await writeAll(file, h);
      const crc = await fill(at + h.length);
      // patch the CRC now that the data is written
      await file.seek(at + 14, Deno.SeekMode.Start);
      const c = new Uint8Array(4);
      new DataView(c.buffer).setUint32(0, crc, true);
      await writeAll(file, c);
      // past the data (not to the end: a trailing hole has not lengthened the file yet)
      await file.seek(at + h.length + size, Deno.SeekMode.Start);
      entries.push({ name: n, offset: at, size, crc });
      at += h.length + size;
    }
    const small = async (name: string, data: Uint8Array) =>
      await entry(name, data.length, async () => {
        await writeAll(file, data);
        return crc32(data);
      });
    await small("data.pkl", statePickle(tensors));
    await small("byteorder", enc.encode("little"));
    let done = 0;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const size = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
      await entry(`data/${i}`, size, (start) => emitTensor(file, path, t, start, size, true));
      done += size;
      options.onProgress?.(done, total, t.name);
    }
    await small("version", enc.encode("3\n"));
    await writeAll(file, centralDirectory(entries, at));
  }, options.overwrite);
}
