/**
 * GGUF, the file format of llama.cpp and Ollama (ggml's `docs/gguf.md`, `ggml/src/gguf.cpp`):
 * the container, read without trusting any count, size, offset or string length in it.
 *
 * ```
 * GGUF {
 *   u32 magic "GGUF"; u32 version (2 or 3); u64 tensor_count; u64 metadata_kv_count;
 *   metadata_kv[metadata_kv_count] { string key; u32 value_type; value }
 *   tensor_info[tensor_count] { string name; u32 n_dims (1..4); u64 ne[n_dims] (innermost first);
 *                               u32 ggml_type; u64 offset (from the data section, aligned) }
 *   padding to general.alignment (default 32); data section
 * }
 * string = u64 length + UTF-8 bytes; value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
 * 6 f32, 7 bool, 8 string, 9 array (u32 element type, u64 count, elements), 10 u64, 11 i64,
 * 12 f64. Everything little-endian (a big-endian file is refused by its magic).
 * ```
 *
 * `readGguf` gives the raw file (metadata, tensors under their GGUF names with ggml types);
 * `openGguf` gives a {@link Checkpoint}: for llama.cpp's `rwkv6` / `rwkv7` layouts, the official
 * RWKV names, shapes and values (see `gguf_rwkv.ts`); for any other architecture, the GGUF
 * names with PyTorch-order shapes, quantized tensors decoded to F32.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint, OpenCheckpointOptions, TensorInfo } from "./checkpoint.ts";
import { RandomAccessFile } from "./file.ts";
import { type Limits, overBudget, resolveLimits } from "./_limits.ts";
import { dequantizeGgmlType, GGML, GGML_TYPES, ggmlTypeName } from "./ggml_quants.ts";
import { rwkvView } from "./gguf_rwkv.ts";
import {
  FIXED,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE,
  type GgufFile,
  type GgufTensor,
  type GgufValue,
  LAZY_LISTS,
  metadataObject,
} from "./_gguf_format.ts";

export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE,
  type GgufFile,
  type GgufTensor,
  type GgufValue,
  metadataObject,
} from "./_gguf_format.ts";

/** Reads a growing window of the file's head, spending the header budget as it goes. */
class HeaderReader {
  #buf: Uint8Array = new Uint8Array(0);
  #view = new DataView(this.#buf.buffer);
  #at = 0; // file offset of #buf[0]
  pos = 0; // file offset of the cursor
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(readonly file: RandomAccessFile, readonly limits: Limits) {}

  /** Whether `n` bytes at the cursor are already readable (then {@link need} is not needed). */
  has(n: number): boolean {
    return this.pos + n <= this.#at + this.#buf.length;
  }

  /** Makes `n` bytes at the cursor readable; a FormatError naming `what` when they are not. */
  async need(n: number, what: string): Promise<void> {
    const end = this.pos + n;
    if (end <= this.#at + this.#buf.length) return;
    if (end > this.file.size) {
      throw new FormatError(
        this.file.path,
        what,
        `needs bytes ${this.pos}..${end} but the file has ${this.file.size} (truncated or lying?)`,
      );
    }
    if (end > this.limits.headerBytes) {
      throw overBudget(
        this.file.path,
        "headerBytes",
        this.limits.headerBytes,
        `the header (${what})`,
      );
    }
    const want = Math.min(
      this.file.size,
      this.limits.headerBytes,
      Math.max(end, this.pos + (1 << 20)),
    );
    this.#buf = await this.file.readAt(this.pos, want - this.pos, what);
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.length);
    this.#at = this.pos;
  }

  /** Bytes left in the file after the cursor. */
  get left(): number {
    return this.file.size - this.pos;
  }

  u8(): number {
    return this.#buf[this.pos++ - this.#at];
  }
  u32(): number {
    const v = this.#view.getUint32(this.pos - this.#at, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.#view.getBigUint64(this.pos - this.#at, true);
    this.pos += 8;
    return v;
  }
  /** The next `n` bytes (a copy). */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const o = this.pos - this.#at;
    this.pos += n;
    return this.#buf.slice(o, o + n) as Uint8Array<ArrayBuffer>;
  }
  /**
   * The bytes from file offset `start` to the cursor (a copy): from the window when it holds
   * them, else read again (they were read, and counted against the budget, once already).
   */
  async since(start: number, what: string): Promise<Uint8Array> {
    if (start >= this.#at) return this.#buf.slice(start - this.#at, this.pos - this.#at);
    return (await this.file.readAt(start, this.pos - start, what)).slice();
  }
  /**
   * The length of the string at the cursor (its 8 bytes readable), the cursor moved past it;
   * undefined, cursor unmoved, when that length is beyond 2^32 or the bytes left.
   */
  stringLength(): number | undefined {
    const o = this.pos - this.#at;
    const lo = this.#view.getUint32(o, true), hi = this.#view.getUint32(o + 4, true);
    if (hi !== 0 || lo > this.left - 8) return undefined;
    this.pos += 8;
    return lo;
  }
  /** The string at the cursor when it is already readable (else undefined, cursor unmoved). */
  stringNow(): string | undefined {
    if (!this.has(8)) return undefined;
    const n = this.#view.getBigUint64(this.pos - this.#at, true);
    if (n > 4096n || !this.has(8 + Number(n))) return undefined;
    this.pos += 8;
    return this.text(Number(n));
  }

  /** Decodes `n` bytes as strict UTF-8. */
  text(n: number): string {
    const o = this.pos - this.#at;
    this.pos += n;
    const b = this.#buf.subarray(o, o + n);
    let ascii = true;
    for (let i = 0; i < b.length && ascii; i++) ascii = b[i] < 0x80;
    if (ascii && n <= 64) return String.fromCharCode(...b);
    return this.#decoder.decode(b);
  }
}

/** A u64 as a number, or a FormatError when it is beyond 2^53 − 1. */
function safe(path: string, what: string, v: bigint, max = Number.MAX_SAFE_INTEGER): number {
  if (v > BigInt(max)) throw new FormatError(path, what, `absurd value ${v}`);
  return Number(v);
}

/** Reads a GGUF string at the cursor. */
async function readString(r: HeaderReader, what: string): Promise<string> {
  if (!r.has(8)) await r.need(8, what);
  const length = r.u64();
  const n = safe(r.file.path, `${what} (string length)`, length, r.left);
  if (!r.has(n)) await r.need(n, what);
  try {
    return r.text(n);
  } catch {
    throw new FormatError(r.file.path, what, "string is not valid UTF-8");
  }
}

const ARRAY_CTORS: Readonly<
  Record<
    number,
    { new (b: ArrayBuffer): Exclude<GgufValue, number | bigint | boolean | string | GgufValue[]> }
  >
> = {
  0: Uint8Array,
  1: Int8Array,
  2: Uint16Array,
  3: Int16Array,
  4: Uint32Array,
  5: Int32Array,
  6: Float32Array,
  10: BigUint64Array,
  11: BigInt64Array,
  12: Float64Array,
};

/** Reads a value of `type` at the cursor. */
async function readValue(
  r: HeaderReader,
  type: number,
  what: string,
  depth: number,
): Promise<GgufValue> {
  const path = r.file.path;
  if (type in FIXED) {
    const n = FIXED[type];
    await r.need(n, what);
    const b = r.bytes(n), v = new DataView(b.buffer);
    switch (type) {
      case 0:
        return v.getUint8(0);
      case 1:
        return v.getInt8(0);
      case 2:
        return v.getUint16(0, true);
      case 3:
        return v.getInt16(0, true);
      case 4:
        return v.getUint32(0, true);
      case 5:
        return v.getInt32(0, true);
      case 6:
        return v.getFloat32(0, true);
      case 7:
        if (b[0] > 1) throw new FormatError(path, what, `bool of value ${b[0]}`);
        return b[0] === 1;
      case 10: {
        const x = v.getBigUint64(0, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
      }
      case 11: {
        const x = v.getBigInt64(0, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= -BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(x)
          : x;
      }
      default:
        return v.getFloat64(0, true);
    }
  }
  if (type === GGUF_VALUE.STRING) return await readString(r, what);
  if (type !== GGUF_VALUE.ARRAY) throw new FormatError(path, what, `unknown value type ${type}`);
  if (depth >= r.limits.depth) {
    throw overBudget(path, "depth", r.limits.depth, `arrays nested in ${what}`);
  }
  await r.need(12, what);
  const et = r.u32();
  const countBig = r.u64();
  const min = FIXED[et] ?? (et === GGUF_VALUE.STRING ? 8 : et === GGUF_VALUE.ARRAY ? 12 : 0);
  if (min === 0) throw new FormatError(path, what, `array of unknown value type ${et}`);
  // Each element takes at least `min` bytes: a count the file cannot hold is a lie.
  const count = safe(path, `${what} (array count)`, countBig, Math.floor(r.left / min));
  if (et in ARRAY_CTORS) {
    const n = count * min;
    await r.need(n, what);
    return new ARRAY_CTORS[et](r.bytes(n).buffer);
  }
  if (et === GGUF_VALUE.BOOL) {
    await r.need(count, what);
    return Array.from(r.bytes(count), (x) => x !== 0);
  }
  if (et === GGUF_VALUE.STRING && count >= LAZY_STRINGS) return await readStrings(r, count, what);
  const out: GgufValue[] = [];
  for (let i = 0; i < count; i++) {
    let v: GgufValue | undefined;
    if (et === GGUF_VALUE.STRING) {
      try {
        v = r.stringNow(); // a vocabulary's 65536 tokens without a promise each
      } catch {
        throw new FormatError(r.file.path, `${what}[${i}]`, "string is not valid UTF-8");
      }
    }
    out.push(v ?? await readValue(r, et, `${what}[${i}]`, depth + 1));
  }
  return out;
}

/** String arrays from this long (a vocabulary) are decoded on first use ({@link readStrings}). */
const LAZY_STRINGS = 1024;

/**
 * A long array of strings at the cursor (after its count): every length checked against the
 * bytes left now, the text decoded (strict UTF-8) only when the array is first used — a
 * vocabulary of 65536 tokens is only needed by the tokenizer, not to load the weights. The
 * array is a real one (`Array.isArray` holds) behind a Proxy that decodes it whole on the first
 * access of anything but its length; text that is not UTF-8 is then a FormatError naming the
 * file and the element.
 */
async function readStrings(r: HeaderReader, count: number, what: string): Promise<string[]> {
  const path = r.file.path, start = r.pos;
  const at = new Float64Array(count); // each string's start, from `start`
  const lengths = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    if (!r.has(8)) await r.need(8, `${what}[${i}]`);
    const n = r.stringLength();
    if (n === undefined) {
      throw new FormatError(path, `${what}[${i}] (string length)`, `absurd value ${r.u64()}`);
    }
    at[i] = r.pos - start;
    lengths[i] = n;
    if (!r.has(n)) await r.need(n, `${what}[${i}]`);
    r.pos += n;
  }
  let bytes: Uint8Array | undefined = await r.since(start, what);
  const list: string[] = new Array(count);
  const decode = () => {
    if (!bytes) return;
    const b = bytes;
    bytes = undefined;
    // windows-1252 (the WHATWG "latin1") gives one UTF-16 unit per byte: an ASCII string is a
    // slice of the whole; any other is decoded strictly on its own
    const whole = new TextDecoder("latin1").decode(b);
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < count; i++) {
      const o = at[i], n = lengths[i];
      let ascii = true;
      for (let j = o; j < o + n && ascii; j++) ascii = b[j] < 0x80;
      if (ascii) list[i] = whole.slice(o, o + n);
      else {
        try {
          list[i] = utf8.decode(b.subarray(o, o + n));
        } catch {
          bytes = b; // still undecoded: the same error next time
          throw new FormatError(path, `${what}[${i}]`, "string is not valid UTF-8");
        }
      }
    }
  };
  const use = <T>(f: () => T): T => {
    decode();
    return f();
  };
  // Deno.inspect and console.log look at the list itself, not through the Proxy
  Object.defineProperty(list, Symbol.for("Deno.customInspect"), {
    value: (inspect: (v: unknown, o: unknown) => string, options: unknown) =>
      use(() => inspect(list.slice(), options)),
  });
  const lazy = new Proxy(list, {
    // `then`: looked up when an async function returns the list (an array has none)
    get: (t, k, rcv) =>
      k === "length" ? count : k === "then" ? undefined : use(() => Reflect.get(t, k, rcv)),
    has: (t, k) => use(() => Reflect.has(t, k)),
    ownKeys: (t) => use(() => Reflect.ownKeys(t)),
    getOwnPropertyDescriptor: (t, k) => use(() => Reflect.getOwnPropertyDescriptor(t, k)),
    set: (t, k, v, rcv) => use(() => Reflect.set(t, k, v, rcv)),
    defineProperty: (t, k, d) => use(() => Reflect.defineProperty(t, k, d)),
    deleteProperty: (t, k) => use(() => Reflect.deleteProperty(t, k)),
  });
  LAZY_LISTS.add(lazy);
  return lazy;
}

/**
 * Reads and checks a GGUF file's header: magic, version, every metadata value, every tensor's
 * name, dims, type and offset, and the data section's bounds. Tensor data is not read. Every
 * problem is a FormatError naming the file and the key or tensor; the header is bounded by
 * `limits.headerBytes`, the tensor count by `limits.tensors`, array nesting by `limits.depth`.
 * @example
 * ```ts
 * const g = await readGguf("rwkv7-g1-0.4b-Q8_0.gguf");
 * console.log(g.metadata.get("general.architecture")); // "rwkv7"
 * g.close();
 * ```
 */
export async function readGguf(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<GgufFile> {
  const limits = resolveLimits(options.limits);
  const file = await RandomAccessFile.open(path);
  try {
    return await parse(file, limits);
  } catch (e) {
    file.close();
    throw e;
  }
}

async function parse(file: RandomAccessFile, limits: Limits): Promise<GgufFile> {
  const path = file.path;
  const r = new HeaderReader(file, limits);
  await r.need(24, "header");
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) {
    if (magic === 0x47475546) {
      throw new FormatError(path, "magic", "a big-endian GGUF file: only little-endian is read");
    }
    throw new FormatError(path, "magic", `0x${magic.toString(16)} is not GGUF's "GGUF"`);
  }
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    throw new FormatError(
      path,
      "version",
      `GGUF version ${version} is not read (2 and 3 are; version 1 files predate August 2023: ` +
        "convert the model again)",
    );
  }
  // A tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes, a key-value 8 + 4 + 1.
  const nTensors = safe(path, "tensor_count", r.u64(), Math.floor(r.left / 32));
  const nKv = safe(path, "metadata_kv_count", r.u64(), Math.floor(r.left / 13));
  if (nTensors > limits.tensors) {
    throw overBudget(path, "tensors", limits.tensors, `the number of tensors (${nTensors})`);
  }
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const key = await readString(r, `metadata key #${i}`);
    if (metadata.has(key)) throw new FormatError(path, key, "metadata key appears twice");
    await r.need(4, key);
    const type = r.u32();
    metadata.set(key, await readValue(r, type, key, 0));
    metadataTypes.set(key, type);
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (
      metadataTypes.get("general.alignment") !== GGUF_VALUE.UINT32 || typeof a !== "number" ||
      a < 1 || (a & (a - 1)) !== 0
    ) {
      throw new FormatError(path, "general.alignment", `${a} is not a power of two (as a u32)`);
    }
    alignment = a;
  }
  const infos: Omit<GgufTensor, "offset">[] = [];
  const rel: number[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = await readString(r, `tensor #${i} name`);
    if (names.has(name)) throw new FormatError(path, name, "tensor appears twice");
    names.add(name);
    await r.need(4, name);
    const nDims = r.u32();
    if (nDims < 1 || nDims > 4) throw new FormatError(path, name, `${nDims} dimensions (1 to 4)`);
    await r.need(nDims * 8 + 12, name);
    const dims: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = safe(path, name, r.u64(), 2 ** 40);
      if (n < 1) throw new FormatError(path, name, `dimension ${d} is ${n}`);
      dims.push(n);
      count *= n;
      if (count > 2 ** 48) throw new FormatError(path, name, `absurd dims [${dims}]`);
    }
    const type = r.u32();
    const t = GGML_TYPES[type];
    if (!t) throw new FormatError(path, name, `unknown ggml type ${type}`);
    if (dims[0] % t.blockValues !== 0) {
      throw new FormatError(
        path,
        name,
        `rows of ${dims[0]} values are not whole ${t.name} blocks of ${t.blockValues}`,
      );
    }
    const offset = safe(path, name, r.u64(), r.left);
    if (offset % alignment !== 0) {
      throw new FormatError(path, name, `data offset ${offset} is not a multiple of ${alignment}`);
    }
    const byteLength = (count / t.blockValues) * t.blockBytes;
    infos.push({
      name,
      type,
      typeName: t.name,
      dims,
      shape: dims.slice().reverse(),
      count,
      byteLength,
    });
    rel.push(offset);
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const tensors = new Map<string, GgufTensor>();
  infos.forEach((t, i) => {
    const offset = dataOffset + rel[i];
    if (offset + t.byteLength > file.size) {
      throw new FormatError(
        path,
        t.name,
        `${t.typeName} data of dims [${t.dims}] needs bytes ${offset}..${offset + t.byteLength}, ` +
          `the file has ${file.size} (truncated?)`,
      );
    }
    tensors.set(t.name, { ...t, offset });
  });
  // No two tensors may share bytes.
  const byStart = [...tensors.values()].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byStart.length; i++) {
    const a = byStart[i - 1], b = byStart[i];
    if (a.offset + a.byteLength > b.offset) {
      throw new FormatError(path, b.name, `data overlaps tensor ${a.name}'s`);
    }
  }
  return {
    path,
    version,
    metadata,
    metadataTypes,
    tensors,
    alignment,
    dataOffset,
    readRaw(name: string, into?: Uint8Array, offset = 0): Promise<Uint8Array> {
      const t = tensors.get(name);
      if (!t) return Promise.reject(new FormatError(path, name, "no such tensor"));
      const n = into ? into.length : t.byteLength - offset;
      if (offset < 0 || offset + n > t.byteLength) {
        return Promise.reject(
          new FormatError(path, name, `range ${offset}+${n} outside its ${t.byteLength} bytes`),
        );
      }
      return file.readAt(t.offset + offset, into ?? n, name);
    },
    close: () => file.close(),
  };
}

/**
 * Opens a GGUF file as a {@link Checkpoint}: llama.cpp's `rwkv6` and `rwkv7` models under the
 * official RWKV names, shapes and values (Q8_0, Q4_0 and Q5_0 matrices as block-quantized
 * integers the loader copies without re-quantizing, other quantized types decoded to F32 as ggml
 * decodes them); other architectures under their GGUF names, decoded to F32 when quantized.
 * `metadata` holds every GGUF key.
 * @example
 * ```ts
 * const ck = await openGguf("rwkv7-g1-0.4b-Q8_0.gguf");
 * console.log(ck.tensors.get("blocks.0.att.key.weight")); // I8 [1024, 1024] + its .qscale
 * ck.close();
 * ```
 */
export async function openGguf(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  const g = await readGguf(path, options);
  try {
    const arch = g.metadata.get("general.architecture");
    if (arch === "rwkv6" || arch === "rwkv7") return await rwkvView(g, arch);
    return plainView(g);
  } catch (e) {
    g.close();
    throw e;
  }
}

/** Any other GGUF: its own names, PyTorch-order shapes, quantized tensors decoded to F32. */
function plainView(g: GgufFile): Checkpoint {
  const tensors = new Map<string, TensorInfo>();
  for (const t of g.tensors.values()) {
    const dtype = t.type === GGML.F16 ? "F16" : t.type === GGML.BF16 ? "BF16" : "F32";
    tensors.set(t.name, {
      name: t.name,
      dtype,
      shape: t.shape,
      byteLength: t.count * (dtype === "F32" ? 4 : 2),
    });
  }
  return {
    path: g.path,
    format: "gguf",
    tensors,
    metadata: metadataObject(g),
    async read(name: string, into?: Uint8Array): Promise<Uint8Array> {
      const t = g.tensors.get(name), info = tensors.get(name);
      if (!t || !info) throw new FormatError(g.path, name, "no such tensor");
      if (into && into.length !== info.byteLength) {
        throw new FormatError(
          g.path,
          name,
          `buffer of ${into.length} bytes, tensor has ${info.byteLength}`,
        );
      }
      if (t.type === GGML.F32 || t.type === GGML.F16 || t.type === GGML.BF16) {
        return await g.readRaw(name, into);
      }
      if (!GGML_TYPES[t.type].decoded) {
        throw new FormatError(g.path, name, `ggml type ${ggmlTypeName(t.type)} is not decoded`);
      }
      const out = into ?? new Uint8Array(info.byteLength);
      const f = dequantizeGgmlType(await g.readRaw(name), t.type, t.count);
      out.set(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
      return out;
    },
    close: () => g.close(),
  };
}
