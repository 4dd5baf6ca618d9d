/**
 * SafeTensors: an 8-byte little-endian header length, a JSON header mapping each tensor name
 * to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` of strings), then the data.
 * The reader validates everything before any data is read (the writer is
 * `safetensors_write.ts`).
 * @module
 */

import { FormatError } from "../errors.ts";
import {
  type Checkpoint,
  type DType,
  DTYPE_SIZE,
  isDType,
  type OpenCheckpointOptions,
  type TensorInfo,
} from "./checkpoint.ts";
import { RandomAccessFile } from "./file.ts";
import { type Limits, overBudget, resolveLimits } from "./_limits.ts";

/** Headers larger than this are refused by default, as the Rust reference refuses them. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Where one tensor's bytes sit in a SafeTensors file.
 * @example
 * ```ts
 * const t = (await openSafetensors("model.safetensors")).tensors.get("emb.weight")!;
 * console.log(t.dtype, t.shape, t.offset);
 * ```
 */
export interface SafetensorsTensorInfo extends TensorInfo {
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
}

/**
 * An open SafeTensors file.
 * @example
 * ```ts
 * const ck = await openSafetensors("model.safetensors");
 * console.log(ck.metadata, [...ck.tensors.keys()]);
 * ```
 */
export interface SafetensorsCheckpoint extends Checkpoint {
  /** Always `"safetensors"`. */
  readonly format: "safetensors";
  /** Every tensor by name, with where its bytes sit. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map (string → string). */
  readonly metadata: Readonly<Record<string, string>>;
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parses and validates a SafeTensors header by the Rust `safetensors` rules: valid UTF-8 JSON
 * that opens with `{`, unique keys, `dtype`/`shape`/`data_offsets` present once each, shapes
 * and offsets written as non-negative integers (`4.0` and `4e0` are floats), and data that
 * tiles the rest of the file exactly: sorted by offsets, each tensor starts where the previous
 * ends, the first at 0, the last at the end of the file (no holes, no overlaps, no trailing
 * bytes). `fileSize` is the whole file's size; `limits.tensors` bounds the count.
 * @example
 * ```ts
 * declare const headerBytes: Uint8Array, n: number, fileSize: number;
 * const { tensors } = parseSafetensorsHeader("x.safetensors", headerBytes, 8 + n, fileSize);
 * ```
 */
export function parseSafetensorsHeader(
  path: string,
  headerBytes: Uint8Array,
  dataStart: number,
  fileSize: number,
  options: OpenCheckpointOptions = {},
): { tensors: Map<string, SafetensorsTensorInfo>; metadata: Record<string, string> } {
  const limits = resolveLimits(options.limits);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new FormatError(path, "header", "not valid UTF-8");
  }
  const parsed = new HeaderParser(path, text, limits).parse();
  const { names, dtypes, shapes, begins, ends, metadata } = parsed;
  const n = names.length;
  // Sorted by (begin, end), as the reference validates them (writers write them in order,
  // so the sort and a second map are usually skipped).
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) {
    sorted = begins[i - 1] < begins[i] || (begins[i - 1] === begins[i] && ends[i - 1] <= ends[i]);
  }
  const order = sorted
    ? undefined
    : Array.from({ length: n }, (_, i) => i).sort((a, b) =>
      begins[a] - begins[b] || ends[a] - ends[b]
    );
  const dataSize = fileSize - dataStart;
  const tensors = sorted ? parsed.byName : new Map<string, SafetensorsTensorInfo>();
  let at = 0;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k] : k;
    const name = names[i], dtype = dtypes[i], shape = shapes[i];
    const begin = begins[i], end = ends[i];
    if (begin !== at || end < begin) {
      const why = end < begin
        ? `data_offsets end ${end} < begin ${begin}`
        : begin < at
        ? `data [${begin}, ${end}) overlaps the tensor before it (which ends at ${at})`
        : `data starts at ${begin}, but the data before it ends at ${at}: a hole`;
      throw new FormatError(path, name, why);
    }
    if (end > dataSize) {
      throw new FormatError(
        path,
        name,
        `data ends at ${end} but the file holds only ${dataSize} bytes of data (truncated?)`,
      );
    }
    const expected = product(shape) * DTYPE_SIZE[dtype];
    if (expected !== end - begin) {
      throw new FormatError(
        path,
        name,
        `shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes, span holds ${
          end - begin
        }`,
      );
    }
    const info = parsed.byName.get(name)!;
    info.byteLength = expected;
    info.offset = dataStart + begin;
    if (!sorted) tensors.set(name, info);
    at = end;
  }
  if (at !== dataSize) {
    throw new FormatError(
      path,
      "data",
      `the tensors hold ${at} bytes of data but the file has ${dataSize} after the header ` +
        "(trailing bytes)",
    );
  }
  return { tensors, metadata };
}

/** The Rust reference's dtype names we cannot hold: named, so the error says so. */
const OTHER_DTYPES = new Set([
  "U16",
  "U32",
  "U64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "C64",
]);

/**
 * A strict JSON reader for the one shape a SafeTensors header has; no per-tensor objects beyond
 * what the result keeps, so a million-tensor header parses in about a second.
 */
class HeaderParser {
  i = 0;
  readonly names: string[] = [];
  readonly dtypes: DType[] = [];
  readonly shapes: number[][] = [];
  readonly begins: number[] = [];
  readonly ends: number[] = [];
  metadata: Record<string, string> = {};
  /** Every tensor in file order, keyed by name (duplicates are caught here). */
  readonly byName = new Map<
    string,
    { -readonly [K in keyof SafetensorsTensorInfo]: SafetensorsTensorInfo[K] }
  >();
  constructor(readonly path: string, readonly s: string, readonly limits: Limits) {}

  fail(msg: string, field = "header"): never {
    throw new FormatError(this.path, field, `${msg} (at character ${this.i})`);
  }
  ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.i);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++this.i);
  }
  eat(ch: string, what: string): void {
    this.ws();
    if (this.s[this.i] !== ch) this.fail(`expected ${JSON.stringify(ch)} ${what}`);
    this.i++;
  }
  /** `true` after a comma, `false` at the closing bracket. */
  more(close: string, first: boolean): boolean {
    this.ws();
    if (this.s[this.i] === close) return (this.i++, false);
    if (!first) {
      if (this.s[this.i] !== ",") this.fail(`expected "," or ${JSON.stringify(close)}`);
      this.i++;
    }
    return true;
  }
  str(): string {
    this.ws();
    const s = this.s;
    if (s[this.i] !== '"') this.fail("expected a string");
    const start = ++this.i;
    const close = s.indexOf('"', start);
    if (close < 0) this.fail("unterminated string");
    let plain = true;
    for (let k = start; k < close; k++) {
      const c = s.charCodeAt(k);
      if (c === 0x5c) {
        plain = false;
        break;
      }
      if (c < 0x20) (this.i = k, this.fail("control character in a string"));
    }
    if (plain) {
      this.i = close + 1;
      return s.slice(start, close);
    }
    // Escapes: find the real end, then let JSON.parse decode this one string.
    let k = start;
    for (;;) {
      const c = s.charCodeAt(k);
      if (Number.isNaN(c)) this.fail("unterminated string");
      if (c === 0x22) break;
      if (c < 0x20) (this.i = k, this.fail("control character in a string"));
      k += c === 0x5c ? 2 : 1;
    }
    this.i = k + 1;
    try {
      return JSON.parse(s.slice(start - 1, k + 1));
    } catch {
      return this.fail("bad escape in a string");
    }
  }
  /** A non-negative integer written as one (no fraction, exponent or sign). */
  uint(field: string, what: string): number {
    this.ws();
    const s = this.s, start = this.i;
    while (s.charCodeAt(this.i) >= 48 && s.charCodeAt(this.i) <= 57) this.i++;
    const digits = s.slice(start, this.i);
    const next = s[this.i];
    if (
      !digits || next === "." || next === "e" || next === "E" ||
      (digits.length > 1 && digits[0] === "0")
    ) {
      this.i = start;
      this.fail(`${what} must be non-negative integers`, field);
    }
    const v = Number(digits);
    if (!Number.isSafeInteger(v)) this.fail(`${what} ${digits} is out of range`, field);
    return v;
  }
  uints(field: string, what: string): number[] {
    this.eat("[", `to open ${what}`);
    const out: number[] = [];
    for (let first = true; this.more("]", first); first = false) out.push(this.uint(field, what));
    return out;
  }
  /** Skips any JSON value (an unknown field of a tensor, which the reference ignores). */
  skip(depth: number): void {
    if (depth > this.limits.depth) this.fail("values nest too deep", "limits.depth");
    this.ws();
    const c = this.s[this.i];
    if (c === '"') return void this.str();
    if (c === "{" || c === "[") {
      this.i++;
      const close = c === "{" ? "}" : "]";
      for (let first = true; this.more(close, first); first = false) {
        if (c === "{") (this.str(), this.eat(":", "after a key"));
        this.skip(depth + 1);
      }
      return;
    }
    const m = /^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)/
      .exec(this.s.slice(this.i, this.i + 400));
    if (!m) this.fail("not a JSON value");
    this.i += m[0].length;
  }

  parse(): this {
    // Every tensor entry has a "data_offsets" key: counting them first refuses a header of
    // millions of tensors before any is parsed. (An escaped key is not counted; the count in
    // tensor() still holds.)
    let entries = 0;
    for (
      let at = this.s.indexOf('"data_offsets"');
      at >= 0;
      at = this.s.indexOf('"data_offsets"', at + 14)
    ) {
      if (++entries > this.limits.tensors) {
        throw overBudget(
          this.path,
          "tensors",
          this.limits.tensors,
          'the number of tensors (counting "data_offsets" keys)',
        );
      }
    }
    let sawMetadata = false;
    if (this.s[0] !== "{") this.fail("must be a JSON object starting with {");
    this.i = 1;
    for (let first = true; this.more("}", first); first = false) {
      const name = this.str();
      this.eat(":", "after a key");
      if (name === "__metadata__" ? sawMetadata : this.byName.has(name)) {
        this.fail("appears twice", name);
      }
      if (name === "__metadata__") (sawMetadata = true, this.meta());
      else this.tensor(name);
    }
    this.ws();
    if (this.i !== this.s.length) this.fail("text after the JSON object");
    return this;
  }

  meta(): void {
    this.ws();
    if (this.s.startsWith("null", this.i)) return void (this.i += 4);
    this.eat("{", "to open __metadata__ (an object of strings)");
    const seen = new Set<string>();
    for (let first = true; this.more("}", first); first = false) {
      const k = this.str();
      this.eat(":", "after a key");
      if (seen.has(k)) this.fail("appears twice", `__metadata__.${k}`);
      seen.add(k);
      this.ws();
      if (this.s[this.i] !== '"') this.fail("metadata values must be strings", `__metadata__.${k}`);
      this.metadata[k] = this.str();
    }
  }

  tensor(name: string): void {
    if (this.names.length >= this.limits.tensors) {
      throw overBudget(this.path, "tensors", this.limits.tensors, "the number of tensors");
    }
    this.ws();
    if (this.s[this.i] !== "{") this.fail("tensor entry must be an object", name);
    this.i++;
    let dtype: string | undefined, shape: number[] | undefined, offsets: number[] | undefined;
    for (let first = true; this.more("}", first); first = false) {
      const field = this.str();
      this.eat(":", "after a key");
      const twice = () => this.fail(`field "${field}" appears twice`, name);
      if (field === "dtype") {
        if (dtype !== undefined) twice();
        dtype = this.str();
      } else if (field === "shape") {
        if (shape) twice();
        shape = this.uints(name, "shape dims");
      } else if (field === "data_offsets") {
        if (offsets) twice();
        offsets = this.uints(name, "data_offsets");
        if (offsets.length !== 2) this.fail(`data_offsets must be [begin, end]`, name);
      } else this.skip(1);
    }
    if (dtype === undefined || !shape || !offsets) {
      this.fail(
        `missing ${dtype === undefined ? "dtype" : !shape ? "shape" : "data_offsets"}`,
        name,
      );
    }
    if (!isDType(dtype)) {
      this.fail(
        OTHER_DTYPES.has(dtype!)
          ? `dtype ${dtype} is not supported`
          : `unknown dtype ${JSON.stringify(dtype)}`,
        name,
      );
    }
    if (!Number.isSafeInteger(product(shape!))) this.fail(`shape [${shape}] is too large`, name);
    this.names.push(name);
    this.dtypes.push(dtype as DType);
    this.shapes.push(shape!);
    this.begins.push(offsets![0]);
    this.ends.push(offsets![1]);
    // byteLength and offset are set once the offsets are validated.
    this.byName.set(name, { name, dtype: dtype as DType, shape: shape!, byteLength: 0, offset: 0 });
  }
}

/**
 * Opens a SafeTensors file: reads and validates its header only, by the Rust reference's rules
 * (see {@link parseSafetensorsHeader}); `options.limits` bounds the header and tensor count.
 * @example
 * ```ts
 * const ck = await openSafetensors("model.safetensors");
 * for (const t of ck.tensors.values()) console.log(t.name, t.dtype, t.shape);
 * const bytes = await ck.read("emb.weight");
 * ck.close();
 * ```
 */
export async function openSafetensors(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<SafetensorsCheckpoint> {
  const limits = resolveLimits(options.limits);
  const file = await RandomAccessFile.open(path);
  try {
    if (file.size < 8) throw new FormatError(path, "header", "file shorter than 8 bytes");
    const lenBytes = await file.readAt(0, 8, "header length");
    const len64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (len64 > BigInt(limits.headerBytes)) {
      throw overBudget(
        path,
        "headerBytes",
        limits.headerBytes,
        `a header length of ${len64} bytes`,
      );
    }
    if (len64 > BigInt(file.size - 8)) {
      throw new FormatError(
        path,
        "header length",
        `claims ${len64} bytes, file has ${file.size - 8} after it (truncated?)`,
      );
    }
    const len = Number(len64);
    const header = await file.readAt(8, len, "header");
    const { tensors, metadata } = parseSafetensorsHeader(path, header, 8 + len, file.size, options);
    return {
      path,
      format: "safetensors",
      tensors,
      metadata,
      read(name: string, into?: Uint8Array): Promise<Uint8Array> {
        const t = tensors.get(name);
        if (!t) return Promise.reject(new FormatError(path, name, "no such tensor"));
        if (into && into.length !== t.byteLength) {
          return Promise.reject(
            new FormatError(
              path,
              name,
              `buffer of ${into.length} bytes, tensor has ${t.byteLength}`,
            ),
          );
        }
        return file.readAt(t.offset, into ?? t.byteLength, name);
      },
      readRange(name: string, offset: number, into: Uint8Array): Promise<Uint8Array> {
        const t = tensors.get(name);
        if (!t) return Promise.reject(new FormatError(path, name, "no such tensor"));
        if (offset < 0 || offset + into.length > t.byteLength) {
          return Promise.reject(
            new FormatError(
              path,
              name,
              `range ${offset}+${into.length} outside the tensor's ${t.byteLength} bytes`,
            ),
          );
        }
        return file.readAt(t.offset + offset, into, name);
      },
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}
