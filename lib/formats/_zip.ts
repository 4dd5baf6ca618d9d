/**
 * Just enough of the zip format to read PyTorch checkpoints: the central directory (with
 * ZIP64), stored and deflated entries. Every size and offset is checked against the file
 * before anything is allocated, so a hostile archive cannot make us read past its end or
 * reserve absurd memory.
 * @module
 */

import { FormatError } from "../errors.ts";
import { crc32 } from "./_crc32.ts";
import type { RandomAccessFile } from "./file.ts";
import { Counter, type Limits, overBudget } from "./_limits.ts";

/** One zip entry, as the central directory describes it. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  /** General purpose flags (bit 3: sizes live in a data descriptor, not the local header). */
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc: number;
  /** Offset of the local file header. */
  readonly headerOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_LEN = 22;
const LOCATOR_LEN = 20;
const MAX_COMMENT = 0xffff;
/** Compressed input is fed to the inflater in chunks of this size. */
const CHUNK = 1 << 20;

function u64(v: DataView, o: number): number {
  const n = v.getBigUint64(o, true);
  // Anything past 2^53 cannot be a real offset; saturating keeps later range checks failing.
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/**
 * Reads the central directory. The end record is searched backwards from the end of the file
 * over at most a maximal comment (64 KiB) plus the record itself. Encrypted entries are
 * refused; `limits.entries` bounds the count and `limits.inflateRatio` what a deflated entry
 * may claim to hold (deflate itself cannot pass about 1032:1).
 */
export async function readZipDirectory(f: RandomAccessFile, limits: Limits): Promise<ZipEntry[]> {
  const path = f.path;
  if (f.size < EOCD_LEN) {
    throw new FormatError(path, "zip", "too short for a zip end-of-central-directory record");
  }
  // The extra 20 bytes let us see the ZIP64 locator that sits just before the end record.
  const tailLen = Math.min(f.size, MAX_COMMENT + EOCD_LEN + LOCATOR_LEN);
  const tailStart = f.size - tailLen;
  const tail = await f.readAt(tailStart, tailLen, "zip end of central directory");
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.length);
  let eocd = -1;
  for (let i = tail.length - EOCD_LEN; i >= 0; i--) {
    // A signature is only believed when its comment fits the file (tensor bytes may hold one).
    if (
      tv.getUint32(i, true) === SIG_EOCD &&
      i + EOCD_LEN + tv.getUint16(i + 20, true) <= tail.length
    ) {
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
  const locator = eocd - LOCATOR_LEN;
  if (locator >= 0 && tv.getUint32(locator, true) === SIG_ZIP64_LOCATOR) {
    const recOffset = u64(tv, locator + 8);
    if (recOffset + 56 > tailStart + locator) {
      throw new FormatError(path, "zip64 end of central directory", "outside the file");
    }
    const rec = await f.readAt(recOffset, 56, "zip64 end of central directory");
    const rv = new DataView(rec.buffer, rec.byteOffset, 56);
    if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw new FormatError(path, "zip64 end of central directory", "bad signature");
    }
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  }
  if (count > limits.entries) {
    throw overBudget(path, "entries", limits.entries, `a zip of ${count} entries`);
  }
  if (cdOffset + cdSize > f.size || cdSize < count * 46) {
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
    if (o + 46 > cd.length || v.getUint32(o, true) !== SIG_CENTRAL) {
      throw new FormatError(path, `zip entry ${i}`, "bad central directory record");
    }
    const flags = v.getUint16(o + 8, true);
    const method = v.getUint16(o + 10, true);
    const crc = v.getUint32(o + 16, true);
    let compressedSize = v.getUint32(o + 20, true);
    let size = v.getUint32(o + 24, true);
    const nameLen = v.getUint16(o + 28, true);
    const extraLen = v.getUint16(o + 30, true);
    const commentLen = v.getUint16(o + 32, true);
    let headerOffset = v.getUint32(o + 42, true);
    const recordEnd = o + 46 + nameLen + extraLen + commentLen;
    if (recordEnd > cd.length) {
      throw new FormatError(path, `zip entry ${i}`, "record runs past the central directory");
    }
    const name = dec.decode(cd.subarray(o + 46, o + 46 + nameLen));
    // ZIP64 extra field: only the fields whose 32-bit value is saturated are present, in the
    // order uncompressed size, compressed size, local header offset.
    let e = o + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true);
      const fieldEnd = Math.min(e + 4 + v.getUint16(e + 2, true), extraEnd);
      if (id === 0x0001) {
        let p = e + 4;
        const next = (): number => {
          if (p + 8 > fieldEnd) throw new FormatError(path, name, "short zip64 extra field");
          p += 8;
          return u64(v, p - 8);
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (headerOffset === 0xffffffff) headerOffset = next();
      }
      e = fieldEnd;
    }
    if (headerOffset + 30 + compressedSize > f.size) {
      throw new FormatError(path, name, "zip entry extends past the end of the file (truncated?)");
    }
    if (method === 0 && compressedSize !== size) {
      throw new FormatError(
        path,
        name,
        `stored entry declares ${compressedSize} bytes stored but ${size} bytes of content`,
      );
    }
    if (flags & 0x41) {
      // Bit 0: encrypted; bit 6: strong encryption. Reading it as plaintext would be garbage.
      throw new FormatError(path, name, "encrypted zip entry: cannot be read");
    }
    if (method === 8 && size > compressedSize * limits.inflateRatio + 1024) {
      throw overBudget(
        path,
        "inflateRatio",
        limits.inflateRatio,
        `deflated entry ${name} claiming ${size} bytes from ${compressedSize}`,
      );
    }
    entries.push({ name, method, flags, compressedSize, size, crc, headerOffset });
    o = recordEnd;
  }
  return entries;
}

/**
 * Offset of an entry's data, from its local header (whose name and extra lengths may differ
 * from the central record's: torch pads the local extra field to align the data).
 */
export async function entryDataOffset(f: RandomAccessFile, e: ZipEntry): Promise<number> {
  const h = await f.readAt(e.headerOffset, 30, e.name);
  const v = new DataView(h.buffer, h.byteOffset, 30);
  if (v.getUint32(0, true) !== SIG_LOCAL) {
    throw new FormatError(f.path, e.name, "bad local file header signature");
  }
  const localFlags = v.getUint16(6, true);
  if (localFlags & 0x41) {
    throw new FormatError(f.path, e.name, "encrypted zip entry: cannot be read");
  }
  const localCompressed = v.getUint32(18, true);
  // Without a data descriptor (flag bit 3) the local header repeats the sizes; a disagreement
  // means one of the two headers lies.
  if (
    !(localFlags & 8) && localCompressed !== 0xffffffff &&
    localCompressed !== Math.min(e.compressedSize, 0xffffffff)
  ) {
    throw new FormatError(
      f.path,
      e.name,
      `local header says ${localCompressed} bytes, central directory ${e.compressedSize}`,
    );
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

/**
 * Streams a deflated entry: compressed bytes are read from the file in chunks and each
 * `next()` gives the next inflated chunk, undefined once the declared size is reached. What
 * follows the declared size in the stream is not read (torch reads the declared size and no
 * more); a stream that ends short of it is an error.
 */
function inflater(
  f: RandomAccessFile,
  e: ZipEntry,
  start: number,
): { next(): Promise<Uint8Array | undefined>; cancel(): void } {
  let fed = 0;
  const input = new ReadableStream<Uint8Array<ArrayBuffer>>({
    async pull(ctrl) {
      if (fed >= e.compressedSize) return ctrl.close();
      const n = Math.min(CHUNK, e.compressedSize - fed);
      const chunk = await f.readAt(start + fed, n, e.name);
      fed += n;
      ctrl.enqueue(chunk as Uint8Array<ArrayBuffer>);
    },
  });
  const reader = input.pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  let at = 0;
  return {
    async next() {
      if (at === e.size) {
        reader.cancel().catch(() => {});
        return undefined;
      }
      try {
        const { done, value } = await reader.read();
        if (done) throw new Error(`inflated to ${at} bytes, declared ${e.size}`);
        const part = value.subarray(0, e.size - at);
        at += part.length;
        return part;
      } catch (err) {
        reader.cancel().catch(() => {});
        if (err instanceof FormatError) throw err;
        throw new FormatError(f.path, e.name, `corrupt deflate data (${(err as Error)?.message})`, {
          cause: err,
        });
      }
    },
    cancel: () => void reader.cancel().catch(() => {}),
  };
}

/**
 * The whole (decompressed) content of an entry. `limit` bounds the size we accept;
 * with `checkCrc` the content is verified against the directory's CRC-32.
 */
export async function readEntry(
  f: RandomAccessFile,
  e: ZipEntry,
  limit: number,
  checkCrc = false,
): Promise<Uint8Array> {
  if (e.size > limit) {
    throw new FormatError(f.path, e.name, `entry of ${e.size} bytes is larger than ${limit}`);
  }
  const start = await entryDataOffset(f, e);
  let out: Uint8Array;
  if (e.method === 0) {
    out = await f.readAt(start, e.size, e.name);
  } else if (e.method === 8) {
    out = new Uint8Array(e.size);
    const src = inflater(f, e, start);
    let at = 0;
    for (let c; (c = await src.next());) (out.set(c, at), at += c.length);
  } else {
    throw new FormatError(f.path, e.name, `unsupported zip compression method ${e.method}`);
  }
  if (checkCrc && crc32(out) !== e.crc) {
    throw new FormatError(f.path, e.name, "CRC-32 mismatch: the entry is corrupt");
  }
  return out;
}

/**
 * Deflated entries of one open archive, each inflated once, as far as reads have needed so far,
 * into a buffer kept until {@link InflateCache.clear}: any number of tensors viewing one storage
 * cost one pass of the inflater. Every entry's declared size is charged against
 * `limits.inflatedBytes` before its buffer is allocated.
 */
export class InflateCache {
  readonly #f: RandomAccessFile;
  readonly #budget: Counter;
  readonly #entries = new Map<string, {
    buf: Uint8Array;
    filled: number;
    src?: ReturnType<typeof inflater>;
    queue: Promise<unknown>;
  }>();
  constructor(f: RandomAccessFile, budget: Counter) {
    this.#f = f;
    this.#budget = budget;
  }

  /** Bytes `offset .. offset+length` of deflated entry `e`'s content (copied into `into`). */
  read(
    e: ZipEntry,
    offset: number,
    length: number,
    into: Uint8Array = new Uint8Array(length),
  ): Promise<Uint8Array> {
    if (offset < 0 || offset + length > e.size) {
      return Promise.reject(
        new FormatError(this.#f.path, e.name, `needs bytes up to ${offset + length} of ${e.size}`),
      );
    }
    let st = this.#entries.get(e.name);
    if (!st) {
      this.#budget.spend(e.size);
      st = { buf: new Uint8Array(e.size), filled: 0, queue: Promise.resolve() };
      this.#entries.set(e.name, st);
    }
    const s = st;
    const job = s.queue.then(async () => {
      if (s.filled < offset + length) {
        s.src ??= inflater(this.#f, e, await entryDataOffset(this.#f, e));
        while (s.filled < offset + length) {
          const c = await s.src.next();
          if (!c) throw new FormatError(this.#f.path, e.name, "entry ended early");
          s.buf.set(c, s.filled);
          s.filled += c.length;
        }
        if (s.filled === e.size) {
          await s.src.next(); // stops the inflater
          s.src = undefined;
        }
      }
      into.set(s.buf.subarray(offset, offset + length));
      return into;
    });
    s.queue = job.catch(() => {});
    return job;
  }

  /** Drops every buffer and stops every inflater. */
  clear(): void {
    for (const s of this.#entries.values()) s.src?.cancel();
    this.#entries.clear();
  }
}
