/**
 * GGUF's constants and the types of a read file (`gguf.ts` reads and opens it, `gguf_rwkv.ts`
 * maps llama.cpp's RWKV layouts).
 * @module
 */

/** `GGUF` read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
/** The alignment of tensor data when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/**
 * GGUF metadata value type codes.
 * @example
 * ```ts
 * const kv = { key: "rwkv7.block_count", type: GGUF_VALUE.UINT32, value: 24 };
 * ```
 */
export const GGUF_VALUE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Bytes of each fixed-size value type. */
export const FIXED: Readonly<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

/**
 * A metadata value as read: numbers (64-bit integers beyond 2^53 as bigint), booleans, strings,
 * arrays of numbers as typed arrays, other arrays as JS arrays.
 * @example
 * ```ts
 * declare const gguf: GgufFile;
 * const tokens = gguf.metadata.get("tokenizer.ggml.tokens") as string[];
 * ```
 */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | GgufValue[];

/**
 * One tensor as a GGUF file stores it.
 * @example
 * ```ts
 * declare const gguf: GgufFile;
 * const t = gguf.tensors.get("blk.0.time_mix_key.weight")!;
 * console.log(t.typeName, t.dims); // "Q8_0" [256, 256]
 * ```
 */
export interface GgufTensor {
  /** Its name in the file, e.g. `blk.0.time_mix_key.weight`. */
  readonly name: string;
  /** ggml type code. */
  readonly type: number;
  /** Its name ("Q8_0", "F16", …). */
  readonly typeName: string;
  /** Dimensions in ggml order, innermost (contiguous) first. */
  readonly dims: readonly number[];
  /** The same, outermost first (PyTorch order). */
  readonly shape: readonly number[];
  /** Number of values. */
  readonly count: number;
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  /** Bytes of the data. */
  readonly byteLength: number;
}

/**
 * A GGUF file, opened: its header parsed and checked, tensor data read on demand.
 * @example
 * ```ts
 * import { readGguf } from "./gguf.ts";
 * const g = await readGguf("model.gguf");
 * console.log(g.metadata.get("general.architecture"), g.tensors.size);
 * g.close();
 * ```
 */
export interface GgufFile {
  /** The file it was read from. */
  readonly path: string;
  /** 2 or 3. */
  readonly version: number;
  /** Every metadata key, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** The value type code of each key (arrays: 9). */
  readonly metadataTypes: ReadonlyMap<string, number>;
  /** Every tensor, in file order. */
  readonly tensors: ReadonlyMap<string, GgufTensor>;
  /** `general.alignment` or 32. */
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  /** Reads a tensor's stored bytes (all of them, or `into.length` from byte `offset`). */
  readRaw(name: string, into?: Uint8Array, offset?: number): Promise<Uint8Array>;
  /** Releases the file. */
  close(): void;
}

/** Lists of strings read lazily (see `readStrings` in gguf.ts): passed on as they are. */
export const LAZY_LISTS: WeakSet<object> = new WeakSet();

/**
 * Metadata as a plain object (what `Checkpoint.metadata` gives), JSON-safe: 64-bit integers
 * beyond 2^53 as decimal strings.
 */
export function metadataObject(g: GgufFile): Record<string, unknown> {
  const plain = (v: GgufValue): unknown =>
    LAZY_LISTS.has(v as object)
      ? v // strings, left undecoded until used
      : typeof v === "bigint"
      ? String(v)
      : v instanceof BigInt64Array || v instanceof BigUint64Array
      ? Array.from(v, (x) => Number.isSafeInteger(Number(x)) ? Number(x) : String(x))
      : Array.isArray(v)
      ? v.map(plain)
      : v;
  return Object.fromEntries([...g.metadata].map(([k, v]) => [k, plain(v)]));
}
