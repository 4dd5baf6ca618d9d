/**
 * Just enough of the zip format to read PyTorch checkpoints: the central directory (with
 * ZIP64), stored and deflated entries. Every size and offset is checked against the file.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { RandomAccessFile } from "./_file.ts";

/** One zip entry. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc: number;
  /** Offset of the local file header. */
  readonly headerOffset: number;
}

const MAX_ENTRIES = 1_000_000;

function u64(v: DataView, o: number): number {
  const n = v.getBigUint64(o, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  return Number(n);
}

/** Reads the central directory. */
export async function readZipDirectory(f: RandomAccessFile): Promise<ZipEntry[]> {
  const path = f.path;
  const tailLen = Math.min(f.size, 65535 + 22 + 20);
  const tail = await f.readAt(f.size - tailLen, tailLen, "zip end of central directory");
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.length);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new FormatError(path, "zip", "no end-of-central-directory record (truncated?)");
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && tv.getUint32(locator, true) === 0x07064b50) {
    const recOffset = u64(tv, locator + 8);
    if (recOffset + 56 > f.size) throw new FormatError(path, "zip64 record", "outside the file");
    const rec = await f.readAt(recOffset, 56, "zip64 end of central directory");
    const rv = new DataView(rec.buffer, rec.byteOffset, 56);
    if (rv.getUint32(0, true) !== 0x06064b50) {
      throw new FormatError(path, "zip64 record", "bad signature");
    }
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  }
  if (count > MAX_ENTRIES || cdOffset + cdSize > f.size || cdSize < count * 46) {
    throw new FormatError(
      path,
      "zip central directory",
      `${count} entries in ${cdSize} bytes at ${cdOffset} do not fit a ${f.size}-byte file`,
    );
  }
  const cd = await f.readAt(cdOffset, cdSize, "zip central directory");
  const v = new DataView(cd.buffer, cd.byteOffset, cd.length);
  const dec = new TextDecoder();
  const entries: ZipEntry[] = [];
  let o = 0;
  for (let i = 0; i < count; i++) {
    if (o + 46 > cd.length || v.getUint32(o, true) !== 0x02014b50) {
      throw new FormatError(path, `zip entry ${i}`, "bad central directory record");
    }
    const method = v.getUint16(o + 10, true);
    const crc = v.getUint32(o + 16, true);
    let compressedSize = v.getUint32(o + 20, true);
    let size = v.getUint32(o + 24, true);
    const nameLen = v.getUint16(o + 28, true);
    const extraLen = v.getUint16(o + 30, true);
    const commentLen = v.getUint16(o + 32, true);
    let headerOffset = v.getUint32(o + 42, true);
    if (o + 46 + nameLen + extraLen + commentLen > cd.length) {
      throw new FormatError(path, `zip entry ${i}`, "record runs past the directory");
    }
    const name = dec.decode(cd.subarray(o + 46, o + 46 + nameLen));
    // ZIP64 extra field: only the fields whose 32-bit value is saturated are present.
    let e = o + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
      if (id === 0x0001) {
        let p = e + 4;
        const need = (cond: boolean) => {
          if (!cond) return false;
          if (p + 8 > e + 4 + len) throw new FormatError(path, name, "short zip64 extra field");
          return true;
        };
        if (need(size === 0xffffffff)) (size = u64(v, p), p += 8);
        if (need(compressedSize === 0xffffffff)) (compressedSize = u64(v, p), p += 8);
        if (need(headerOffset === 0xffffffff)) (headerOffset = u64(v, p), p += 8);
      }
      e += 4 + len;
    }
    if (headerOffset + 30 + compressedSize > f.size) {
      throw new FormatError(path, name, "zip entry extends past the end of the file (truncated?)");
    }
    entries.push({ name, method, compressedSize, size, crc, headerOffset });
    o += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Offset of an entry's data, from its local header. */
export async function entryDataOffset(f: RandomAccessFile, e: ZipEntry): Promise<number> {
  const h = await f.readAt(e.headerOffset, 30, e.name);
  const v = new DataView(h.buffer, h.byteOffset, 30);
  if (v.getUint32(0, true) !== 0x04034b50) {
    throw new FormatError(f.path, e.name, "bad local file header signature");
  }
  const start = e.headerOffset + 30 + v.getUint16(26, true) + v.getUint16(28, true);
  if (start + e.compressedSize > f.size) {
    throw new FormatError(
      f.path,
      e.name,
      "entry data extends past the end of the file (truncated?)",
    );
  }
  return start;
}

/** The whole (decompressed) content of an entry; `limit` bounds what we accept. */
export async function readEntry(
  f: RandomAccessFile,
  e: ZipEntry,
  limit: number = 1 << 30,
): Promise<Uint8Array> {
  if (e.size > limit) {
    throw new FormatError(f.path, e.name, `entry of ${e.size} bytes is too large`);
  }
  const start = await entryDataOffset(f, e);
  const raw = await f.readAt(start, e.compressedSize, e.name);
  if (e.method === 0) {
    if (e.compressedSize !== e.size) {
      throw new FormatError(f.path, e.name, "stored entry with differing sizes");
    }
    return raw;
  }
  if (e.method !== 8) {
    throw new FormatError(f.path, e.name, `unsupported zip compression method ${e.method}`);
  }
  try {
    const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("deflate-raw"),
    );
    const out = new Uint8Array(e.size);
    let n = 0;
    for await (const chunk of stream) {
      if (n + chunk.length > e.size) throw new Error("more data than the declared size");
      out.set(chunk, n);
      n += chunk.length;
    }
    if (n !== e.size) throw new Error(`inflated to ${n} bytes, declared ${e.size}`);
    return out;
  } catch (err) {
    if (err instanceof FormatError) throw err;
    throw new FormatError(f.path, e.name, `corrupt deflate data (${(err as Error).message})`);
  }
}
