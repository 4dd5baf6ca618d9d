/**
 * Writes GGUF files (version 3, little-endian), laid out as ggml's `gguf.cpp` requires: each
 * tensor's data offset is the running total of the tensors before it, each padded to the
 * alignment (32, or `general.alignment`), and the data section starts at the next aligned offset
 * after the header. Written atomically (a temporary file renamed into place).
 * @module
 */

import { FormatError } from "../errors.ts";
import { writeAll, writeAtomic } from "./file.ts";
import { GGML_TYPES } from "./ggml_quants.ts";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE } from "./gguf.ts";

/**
 * One metadata entry to write: its key, value type (`GGUF_VALUE`) and value; an array gives its
 * element type as `arrayType`.
 * @example
 * ```ts
 * import { GGUF_VALUE } from "./_gguf_format.ts";
 * const kv: GgufEntry = { key: "rwkv7.block_count", type: GGUF_VALUE.UINT32, value: 24 };
 * ```
 */
export interface GgufEntry {
  /** The key, e.g. `general.architecture`. */
  readonly key: string;
  /** A `GGUF_VALUE` code. */
  readonly type: number;
  /** Element type of an array (`type` = `GGUF_VALUE.ARRAY`). */
  readonly arrayType?: number;
  /** The value (an array's elements for `GGUF_VALUE.ARRAY`). */
  readonly value: number | bigint | boolean | string | readonly (number | string | boolean)[];
}

/**
 * One tensor to write: ggml type and dims (innermost first); its bytes are produced when the
 * writer gets to it and must be exactly the type's size for those dims.
 * @example
 * ```ts
 * const bytes = new Uint8Array(768 * 4);
 * const t: GgufTensorToWrite = { name: "output_norm.weight", type: 0, dims: [768], data: () => bytes };
 * ```
 */
export interface GgufTensorToWrite {
  /** Its name, e.g. `blk.0.time_mix_key.weight`. */
  readonly name: string;
  /** ggml type code. */
  readonly type: number;
  /** ggml order: innermost (contiguous) first. */
  readonly dims: readonly number[];
  /** Produces its bytes (called once, when the writer gets to it). */
  readonly data: () => Uint8Array | Promise<Uint8Array>;
}

/**
 * Options of {@link writeGguf}.
 * @example
 * ```ts
 * declare const entries: GgufEntry[], tensors: GgufTensorToWrite[];
 * await writeGguf("out.gguf", entries, tensors, { overwrite: true });
 * ```
 */
export interface WriteGgufOptions {
  /** Replace an existing file. */
  readonly overwrite?: boolean;
  /** Bytes of tensor data written so far, of the total, after each tensor. */
  readonly onProgress?: (done: number, total: number, name: string) => void;
}

const enc = new TextEncoder();

/** Writers of the fixed-size value types: each stores `v` at `o` and returns its size. */
const SETTERS: Readonly<Record<number, (d: DataView, o: number, v: unknown) => number>> = {
  [GGUF_VALUE.UINT8]: (d, o, v) => (d.setUint8(o, v as number), 1),
  [GGUF_VALUE.INT8]: (d, o, v) => (d.setInt8(o, v as number), 1),
  [GGUF_VALUE.UINT16]: (d, o, v) => (d.setUint16(o, v as number, true), 2),
  [GGUF_VALUE.INT16]: (d, o, v) => (d.setInt16(o, v as number, true), 2),
  [GGUF_VALUE.UINT32]: (d, o, v) => (d.setUint32(o, v as number, true), 4),
  [GGUF_VALUE.INT32]: (d, o, v) => (d.setInt32(o, v as number, true), 4),
  [GGUF_VALUE.FLOAT32]: (d, o, v) => (d.setFloat32(o, v as number, true), 4),
  [GGUF_VALUE.BOOL]: (d, o, v) => (d.setUint8(o, v ? 1 : 0), 1),
  [GGUF_VALUE.UINT64]: (d, o, v) => (d.setBigUint64(o, BigInt(v as number), true), 8),
  [GGUF_VALUE.INT64]: (d, o, v) => (d.setBigInt64(o, BigInt(v as number), true), 8),
  [GGUF_VALUE.FLOAT64]: (d, o, v) => (d.setFloat64(o, v as number, true), 8),
};

/** Serializes values little-endian into a growing buffer. */
class Bytes {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;
  #room(n: number) {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.#buf.subarray(0, this.length));
    this.#buf = b;
    this.#view = new DataView(b.buffer);
  }
  u32(v: number) {
    this.#room(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.#room(8);
    this.#view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  raw(b: Uint8Array) {
    this.#room(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string) {
    const b = enc.encode(s);
    this.u64(b.length);
    this.raw(b);
  }
  value(type: number, v: unknown) {
    if (type === GGUF_VALUE.STRING) return this.str(v as string);
    const put = SETTERS[type];
    if (!put) throw new RangeError(`GGUF value type ${type} cannot be written here`);
    this.#room(8);
    this.length += put(this.#view, this.length, v);
  }
  done(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/**
 * Writes a GGUF file: `entries` (metadata, in order), then `tensors` (infos, then data in the
 * same order, each padded to the alignment). Nothing is left at `path` when it fails.
 * @example
 * ```ts
 * import { GGUF_VALUE } from "./_gguf_format.ts";
 * await writeGguf("tiny.gguf", [{ key: "general.architecture", type: GGUF_VALUE.STRING, value: "rwkv7" }], [], {});
 * ```
 */
export async function writeGguf(
  path: string,
  entries: readonly GgufEntry[],
  tensors: readonly GgufTensorToWrite[],
  options: WriteGgufOptions = {},
): Promise<void> {
  const align = Number(
    entries.find((e) => e.key === "general.alignment")?.value ?? GGUF_DEFAULT_ALIGNMENT,
  );
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(tensors.length);
  h.u64(entries.length);
  for (const e of entries) {
    h.str(e.key);
    h.u32(e.type);
    if (e.type === GGUF_VALUE.ARRAY) {
      const arr = e.value as readonly unknown[];
      h.u32(e.arrayType!);
      h.u64(arr.length);
      for (const x of arr) h.value(e.arrayType!, x);
    } else h.value(e.type, e.value);
  }
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    const tt = GGML_TYPES[t.type];
    if (!tt) throw new FormatError(path, t.name, `unknown ggml type ${t.type}`);
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims[0] % tt.blockValues !== 0) {
      throw new FormatError(path, t.name, `rows of ${t.dims[0]} are not whole ${tt.name} blocks`);
    }
    const size = (count / tt.blockValues) * tt.blockBytes;
    sizes.push(size);
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(t.type);
    h.u64(offset);
    offset += Math.ceil(size / align) * align;
  }
  const total = offset;
  const header = h.done();
  const pad = (n: number) => new Uint8Array((align - (n % align)) % align);
  await writeAtomic(path, async (file) => {
    await writeAll(file, header);
    await writeAll(file, pad(header.length));
    let done = 0;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const data = await t.data();
      if (data.length !== sizes[i]) {
        throw new FormatError(
          path,
          t.name,
          `${data.length} bytes of data, its type and dims need ${sizes[i]}`,
        );
      }
      await writeAll(file, data);
      await writeAll(file, pad(data.length));
      done += Math.ceil(sizes[i] / align) * align;
      options.onProgress?.(done, total, t.name);
    }
  }, options.overwrite ?? false);
}
