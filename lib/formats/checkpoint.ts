/**
 * The one interface every checkpoint reader gives: tensor names, dtypes and shapes up front,
 * bytes on demand. A reader knows nothing of RWKV.
 * @module
 */

/**
 * Element types, named as SafeTensors names them.
 * @example
 * ```ts
 * declare const checkpoint: Checkpoint;
 * const t = checkpoint.tensors.get("emb.weight")!;
 * if (t.dtype === "BF16") console.log("bfloat16 weights");
 * ```
 */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** True when `s` names a dtype we know. */
export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZE, s);
}

/**
 * What a checkpoint says of one tensor, before any of its data is read.
 * @example
 * ```ts
 * declare const checkpoint: Checkpoint;
 * for (const t of checkpoint.tensors.values()) console.log(t.name, t.dtype, t.shape, t.byteLength);
 * ```
 */
export interface TensorInfo {
  /** Full name, e.g. `blocks.0.att.key.weight`. */
  readonly name: string;
  /** Element type as stored. */
  readonly dtype: DType;
  /** Shape, outermost first (row-major). `[]` for a scalar. */
  readonly shape: readonly number[];
  /** Bytes of the tensor's data, C-contiguous: product(shape) × dtype size. */
  readonly byteLength: number;
}

/**
 * The container a checkpoint was read from.
 * @example
 * ```ts
 * import { openCheckpoint } from "./open.ts";
 * const ck = await openCheckpoint("model.pth");
 * console.log(ck.format); // "pth"
 * ```
 */
export type CheckpointFormat = "safetensors" | "pth" | "pth-legacy" | "rwkv.cpp" | "gguf";

/**
 * A matrix a checkpoint stores block-quantized in one of our in-memory schemes (a GGUF file's
 * Q8_0, Q5_0 and Q4_0 matrices): the tensor `NAME` holds the integers (q8: I8 `[rows, cols]`,
 * value = q·d; q4: U8 `[rows, cols/2]`, value = (q − 8)·d, ggml's nibble order) and `scale`
 * (`NAME.qscale`, `[rows, cols/32]`) one scale `d` per 32 values of a row.
 * @example
 * ```ts
 * declare const checkpoint: Checkpoint;
 * const q = checkpoint.blockQuantized?.get("head.weight"); // { quant: "q8", rows, cols, scale }
 * ```
 */
export interface BlockQuantized {
  /** The scheme. */
  readonly quant: "q8" | "q4";
  /** Rows of the matrix. */
  readonly rows: number;
  /** Columns (values, not bytes). */
  readonly cols: number;
  /** Its scales tensor. */
  readonly scale: TensorInfo;
  /**
   * Present when the file stores the matrix as ggml Q8_0 blocks (34 bytes per 32 values of a
   * row: the scale `d` as an IEEE half, then 32 int8) that {@link Checkpoint.readBlocks} hands
   * over as they are; each scale of `scale` is then `d · scaleMul` (a power of two).
   */
  readonly q8_0?: { readonly scaleMul: number };
}

/**
 * An open checkpoint: lists tensors without reading them, reads each one on demand.
 * @example
 * ```ts
 * import { openCheckpoint } from "./open.ts";
 * const ck: Checkpoint = await openCheckpoint("model.pth");
 * const bytes = await ck.read("head.weight");
 * ck.close();
 * ```
 */
export interface Checkpoint {
  /** The file it was opened from. */
  readonly path: string;
  /** Which container it is. */
  readonly format: CheckpointFormat;
  /** Every tensor, in file order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /**
   * Non-tensor information: a SafeTensors `__metadata__` (strings), or the non-tensor
   * entries of a `.pth` state dict, or a rwkv.cpp header.
   */
  readonly metadata: Readonly<Record<string, unknown>>;
  /**
   * Matrices stored block-quantized in our q8/q4 schemes (GGUF), by name: loaded as they are,
   * never quantized again. Absent for checkpoints of float tensors.
   */
  readonly blockQuantized?: ReadonlyMap<string, BlockQuantized>;
  /**
   * Reads one tensor's data as little-endian, C-contiguous bytes. With `into`, writes there
   * (it must be exactly `byteLength` long) and returns it, so data can stream straight into
   * shared memory.
   */
  read(name: string, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * Reads `into.length` bytes of one tensor's data (as {@link Checkpoint.read} returns it)
   * starting at byte `offset`, so a large tensor can stream through a small buffer. Absent
   * when the container cannot read part of a tensor; callers then read it whole.
   */
  readRange?(name: string, offset: number, into: Uint8Array): Promise<Uint8Array>;
  /**
   * The data of a 2-D tensor transposed (its shape reversed, C-contiguous, same dtype), when the
   * container stores it so and can hand it over without rearranging (GGUF's low-rank factors);
   * else undefined. A loader that wants the transpose saves two passes over it. With `into`
   * (at least `byteLength` long) the bytes go there (its first `byteLength`), and `into` is
   * left alone when the answer is undefined.
   */
  readTransposed?(name: string, into?: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * The stored blocks of a matrix listed with `q8_0` in {@link Checkpoint.blockQuantized}:
   * `into.length` bytes of them from byte `offset` (default 0), as the file stores them. A
   * loader that lays blocks out itself saves taking them apart into integers and scales first.
   */
  readBlocks?(name: string, into: Uint8Array, offset?: number): Promise<Uint8Array>;
  /** Releases the file handle. Reads after this fail. */
  close(): void;
}

/**
 * Work and memory budgets a reader may spend on one file. Each is counted as the work happens;
 * going over one stops the read with a `FormatError` naming the file and the budget
 * (`limits.<name>`). The defaults are far above what any real checkpoint needs (a 14B model
 * has about 600 tensors and a `data.pkl` under 1 MB) and keep a hostile file under about
 * 1 GB of memory and a few seconds; raise one for a file you trust that needs more.
 * @example
 * ```ts
 * import { openCheckpoint } from "./open.ts";
 * const ck = await openCheckpoint("huge-optimizer-state.pth", {
 *   limits: { pickleOps: 100_000_000, pickleMemory: 4 * 2 ** 30 },
 * });
 * ```
 */
export interface CheckpointLimits {
  /** Bytes of pickle (`data.pkl`, or the legacy format's pickles), decompressed. */
  readonly pickleBytes?: number;
  /** Pickle opcodes executed. */
  readonly pickleOps?: number;
  /**
   * Bytes the pickle's values may hold, estimated as they are built (stack, memo, containers,
   * strings), never released until the open ends.
   */
  readonly pickleMemory?: number;
  /** Characters produced turning non-string keys into names (all keys of the file together). */
  readonly nameBytes?: number;
  /** Nesting depth of a key or value that must be walked (tuples in tuples, dicts in dicts). */
  readonly depth?: number;
  /** Decompressed bytes of all deflated zip entries together (each is inflated once). */
  readonly inflatedBytes?: number;
  /** Decompressed bytes per compressed byte of one zip entry. */
  readonly inflateRatio?: number;
  /** Tensors in one checkpoint. */
  readonly tensors?: number;
  /** Entries in one zip archive. */
  readonly entries?: number;
  /**
   * Bytes all tensors may read beyond twice their storages' bytes: views with zero or
   * overlapping strides can ask for more than the file holds, a real file barely does.
   */
  readonly viewBytes?: number;
  /** Bytes of a SafeTensors JSON header (the Rust reference's limit is 100,000,000). */
  readonly headerBytes?: number;
}

/**
 * The budgets used when an option leaves one out.
 * @example
 * ```ts
 * console.log(DEFAULT_LIMITS.pickleOps); // 16000000
 * ```
 */
export const DEFAULT_LIMITS: Readonly<Required<CheckpointLimits>> = Object.freeze({
  pickleBytes: 64 * 2 ** 20,
  pickleOps: 16_000_000,
  pickleMemory: 256 * 2 ** 20,
  nameBytes: 64 * 2 ** 20,
  depth: 64,
  inflatedBytes: 512 * 2 ** 20,
  inflateRatio: 1032,
  tensors: 1_000_000,
  entries: 1_000_000,
  viewBytes: 256 * 2 ** 20,
  headerBytes: 100_000_000,
});

/**
 * Options of `openCheckpoint` and of each format's reader.
 * @example
 * ```ts
 * import { openCheckpoint } from "./open.ts";
 * const ck = await openCheckpoint("model.pth", { limits: { tensors: 5_000_000 } });
 * ```
 */
export interface OpenCheckpointOptions {
  /** Budgets to raise (or lower); the others keep {@link DEFAULT_LIMITS}. */
  readonly limits?: CheckpointLimits;
}

/**
 * One tensor to write: its bytes are produced only when the writer gets to it.
 * @example
 * ```ts
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
  /**
   * Produces exactly product(shape) × dtype size bytes, little-endian, C-contiguous: all at once,
   * or as successive chunks; a number stands for that many zero bytes (the writer leaves a hole
   * there, so a model of zero matrices spends no disk). A chunk may be reused once the next is
   * asked for.
   */
  data():
    | Promise<Uint8Array | number>
    | Uint8Array
    | number
    | AsyncIterable<Uint8Array | number>;
}
