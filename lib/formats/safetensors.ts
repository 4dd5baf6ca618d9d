/**
 * SafeTensors: an 8-byte little-endian header length, a JSON header mapping each tensor name
 * to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` of strings), then the data.
 * The reader validates everything before any data is read; the writer streams tensors one by
 * one into a temporary file renamed into place.
 * @module
 */

import { FormatError } from "../errors.ts";
import { type Checkpoint, type DType, DTYPE_SIZE, isDType, type TensorInfo } from "./checkpoint.ts";
import { RandomAccessFile, writeAll, writeAtomic } from "./_file.ts";

/** Headers larger than this are refused: real ones are a few hundred KiB at most. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Where one tensor's bytes sit in a SafeTensors file.
 * @example
 * ```ts ignore
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
 * ```ts ignore
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

/** Parses and validates a SafeTensors header given the whole-file size. */
export function parseSafetensorsHeader(
  path: string,
  headerBytes: Uint8Array,
  dataStart: number,
  fileSize: number,
): { tensors: Map<string, SafetensorsTensorInfo>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new FormatError(path, "header", `not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(path, "header", "must be a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsTensorInfo[] = [];
  const dataSize = fileSize - dataStart;
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new FormatError(path, "__metadata__", "must be an object of strings");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new FormatError(path, `__metadata__.${k}`, "metadata values must be strings");
        }
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== "object" || raw === null) {
      throw new FormatError(path, name, "tensor entry must be an object");
    }
    const { dtype, shape, data_offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new FormatError(path, name, `unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new FormatError(path, name, `bad shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new FormatError(path, name, `bad data_offsets ${JSON.stringify(data_offsets)}`);
    }
    const [begin, end] = data_offsets as number[];
    if (end < begin) throw new FormatError(path, name, `data_offsets end ${end} < begin ${begin}`);
    if (end > dataSize) {
      throw new FormatError(
        path,
        name,
        `data ends at ${end} but the file holds only ${dataSize} bytes of data (truncated?)`,
      );
    }
    const expected = product(shape as number[]) * DTYPE_SIZE[dtype];
    if (expected !== end - begin) {
      throw new FormatError(
        path,
        name,
        `shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes, span holds ${
          end - begin
        }`,
      );
    }
    entries.push({
      name,
      dtype,
      shape: (shape as number[]).slice(),
      byteLength: expected,
      offset: dataStart + begin,
    });
  }
  // Spans must not overlap (two tensors sharing bytes would be a forged file).
  const sorted = entries.slice().sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].offset < prev.offset + prev.byteLength && sorted[i].byteLength > 0) {
      throw new FormatError(path, sorted[i].name, `data overlaps tensor ${prev.name}`);
    }
  }
  entries.sort((a, b) => a.offset - b.offset);
  return { tensors: new Map(entries.map((e) => [e.name, e])), metadata };
}

/**
 * Opens a SafeTensors file: reads and validates its header only.
 * @example
 * ```ts ignore
 * const ck = await openSafetensors("model.safetensors");
 * for (const t of ck.tensors.values()) console.log(t.name, t.dtype, t.shape);
 * const bytes = await ck.read("emb.weight");
 * ck.close();
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsCheckpoint> {
  const file = await RandomAccessFile.open(path);
  try {
    if (file.size < 8) throw new FormatError(path, "header", "file shorter than 8 bytes");
    const lenBytes = await file.readAt(0, 8, "header length");
    const len64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (len64 > BigInt(Math.min(MAX_HEADER_BYTES, file.size - 8))) {
      throw new FormatError(
        path,
        "header length",
        `claims ${len64} bytes, file has ${file.size - 8} after it (limit ${MAX_HEADER_BYTES})`,
      );
    }
    const len = Number(len64);
    const header = await file.readAt(8, len, "header");
    const { tensors, metadata } = parseSafetensorsHeader(path, header, 8 + len, file.size);
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

/**
 * One tensor to write: its bytes are produced only when the writer gets to it.
 * @example
 * ```ts ignore
 * const t: TensorToWrite = { name: "w", dtype: "F32", shape: [2], data: () => new Uint8Array(8) };
 * ```
 */
export interface TensorToWrite {
  /** Tensor name, as in the state dict. */
  readonly name: string;
  /** Element type. */
  readonly dtype: DType;
  /** Shape (C order). */
  readonly shape: readonly number[];
  /** Produces exactly product(shape) × dtype size bytes, little-endian, C-contiguous. */
  data(): Promise<Uint8Array> | Uint8Array;
}

/**
 * Options of {@link writeSafetensors}.
 * @example
 * ```ts ignore
 * await writeSafetensors("out.safetensors", tensors, { metadata: { format: "pt" }, overwrite: true });
 * ```
 */
export interface WriteSafetensorsOptions {
  /** Strings stored as `__metadata__`. */
  metadata?: Record<string, string>;
  /** Replace an existing file. */
  overwrite?: boolean;
  /** Called after each tensor with bytes written so far and the total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * Writes tensors to a SafeTensors file one at a time (peak memory ≈ the largest tensor), into
 * a temporary file renamed into place; on error nothing is left.
 * @example
 * ```ts ignore
 * await writeSafetensors("out.safetensors", [
 *   { name: "w", dtype: "F32", shape: [2], data: () => new Uint8Array(new Float32Array([1, 2]).buffer) },
 * ], { metadata: { format: "pt" } });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length) {
    header.__metadata__ = options.metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name) || t.name === "__metadata__") {
      throw new FormatError(path, t.name, "duplicate or reserved tensor name");
    }
    seen.add(t.name);
    const size = product(t.shape) * DTYPE_SIZE[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const total = offset;
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  await writeAtomic(path, async (file) => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    await writeAll(file, len);
    await writeAll(file, json);
    let done = 0;
    for (const t of tensors) {
      const bytes = await t.data();
      const size = product(t.shape) * DTYPE_SIZE[t.dtype];
      if (bytes.length !== size) {
        throw new FormatError(path, t.name, `data has ${bytes.length} bytes, shape needs ${size}`);
      }
      await writeAll(file, bytes);
      done += size;
      options.onProgress?.(done, total, t.name);
    }
  }, options.overwrite);
}
