/**
 * Any checkpoint we read → the compact quantized model file: a SafeTensors file whose large
 * projection matrices are stored as q8 (I8) or q4 (packed U8) values plus bf16 block scales
 * (`NAME.qscale`), every other tensor in float, and `__metadata__` saying the scheme
 * (`format: "rwkv-deno-quant"`, see docs/QUANT_FORMAT.md). Loading it copies the integers
 * straight into memory: nothing is quantized again.
 * @module
 */

import { UsageError } from "../errors.ts";
import { basename } from "node:path";
import type { Checkpoint, DType, TensorInfo } from "../formats/checkpoint.ts";
import { f32ToBf16, fromFloat32, toFloat32 } from "../formats/dtype.ts";
import { type TensorToWrite, writeSafetensors } from "../formats/safetensors_write.ts";
import { detectSpec, squeezed } from "../spec/spec.ts";
import { QBLOCK, quantizeQ4, quantizeQ8 } from "./block.ts";
import {
  isLargeMatrix,
  isQuantizable,
  QUANT_FORMAT,
  QUANT_FORMAT_VERSION,
  scaleDtype,
} from "./format.ts";

/**
 * Storage of the large matrices: block-quantized (`q8`, `q4`) or a float type.
 * @example
 * ```ts
 * import type { QuantScheme } from "./write.ts";
 * const quant: QuantScheme = "q8";
 * ```
 */
export type QuantScheme = "q8" | "q4" | "bf16" | "f16" | "f32";

/**
 * Options of {@link writeQuantized}.
 * @example
 * ```ts
 * import type { WriteQuantizedOptions } from "./write.ts";
 * const opts: WriteQuantizedOptions = { quant: "q8", force: true };
 * ```
 */
export interface WriteQuantizedOptions {
  /** How the large matrices are stored. */
  quant: QuantScheme;
  /** Replace an existing output. */
  force?: boolean;
  /** Bytes written so far of the total, after each tensor. */
  onProgress?: (done: number, total: number, name: string) => void;
  /** Recorded as `__metadata__.source` (default: the checkpoint's file name). */
  source?: string;
  /** Recorded as `__metadata__.tokenizer` (default: guessed from the vocabulary size). */
  tokenizer?: string;
  /**
   * Bytes of a matrix's stored rows quantized at once (default 4 MiB): with the checkpoint's
   * ranged reads, what bounds the memory a conversion takes, whatever the model's size. The
   * output does not depend on it (`Infinity`: each matrix whole).
   */
  rowBlockBytes?: number;
}

const SCHEMES: readonly QuantScheme[] = ["q8", "q4", "bf16", "f16", "f32"];
const FLOAT: Record<string, "F32" | "F16" | "BF16"> = { f32: "F32", f16: "F16", bf16: "BF16" };
const FLOATS: ReadonlySet<DType> = new Set(["F32", "F16", "BF16", "F64"]);

/** The tokenizer an RWKV vocabulary size implies. */
const TOKENIZER_BY_VOCAB: Readonly<Record<number, string>> = {
  65536: "rwkv_vocab_v20230424",
  50277: "20B_tokenizer",
  256: "bytes",
};

/**
 * Writes `ck` as a `rwkv-deno-quant` SafeTensors file at `out`, tensor by tensor, the large
 * matrices a block of rows at a time (peak memory about the largest non-quantized tensor and
 * one matrix's scales, not the model), zero runs left as holes, atomically (nothing is left at `out` on failure). Large matrices
 * are stored in `quant`; in q8/q4, those and the embedding, when their rows are whole blocks of
 * 32, are stored as `NAME` (I8 [rows, cols] or U8 [rows, cols/2]) plus `NAME.qscale` (BF16
 * [rows, cols/32]). Other tensors keep their own dtype.
 * @example
 * ```ts
 * import { writeQuantized } from "./write.ts";
 * import { openCheckpoint } from "../formats/open.ts";
 * const ck = await openCheckpoint("../shared/fixtures/tiny-rwkv-7v0.safetensors");
 * const out = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeQuantized(ck, out, { quant: "q8", force: true });
 * ck.close();
 * await Deno.remove(out);
 * ```
 */
export async function writeQuantized(
  ck: Checkpoint,
  out: string,
  opts: WriteQuantizedOptions,
): Promise<void> {
  if (!SCHEMES.includes(opts.quant)) {
    throw new UsageError(`quant must be one of ${SCHEMES.join(", ")}, not ${opts.quant}`);
  }
  if ((ck.metadata as Record<string, unknown>).format === QUANT_FORMAT) {
    throw new UsageError(
      `${ck.path} is already a ${QUANT_FORMAT} file: convert from the float checkpoint instead`,
    );
  }
  const spec = detectSpec(ck.tensors, ck.path);
  const quant = opts.quant;
  const metadata: Record<string, string> = {
    format: QUANT_FORMAT,
    format_version: String(QUANT_FORMAT_VERSION),
    quant,
    block_size: String(QBLOCK),
    rwkv_version: spec.version,
    source: opts.source ?? basename(ck.path),
  };
  const tokenizer = opts.tokenizer ?? TOKENIZER_BY_VOCAB[spec.vocab];
  if (tokenizer) metadata.tokenizer = tokenizer;

  const rowBlock = opts.rowBlockBytes ?? ROW_BLOCK_BYTES;
  if (!(rowBlock >= 1)) throw new UsageError(`rowBlockBytes must be ≥ 1, not ${rowBlock}`);
  const tensors: TensorToWrite[] = [];
  for (const info of ck.tensors.values()) {
    const sq = squeezed(info.shape);
    const large = isLargeMatrix(info.name, info.shape) && FLOATS.has(info.dtype);
    const blocks = isQuantizable(info.name, info.shape) && FLOATS.has(info.dtype) &&
      sq[1] % QBLOCK === 0;
    if (blocks && (quant === "q8" || quant === "q4")) {
      const job = { ck, info, rows: sq[0], cols: sq[1], quant, rowBlockBytes: rowBlock };
      tensors.push(...quantizedPair(job));
    } else if (large && (quant === "f32" || quant === "f16" || quant === "bf16")) {
      const to = FLOAT[quant];
      tensors.push({
        name: info.name,
        dtype: to,
        shape: info.shape,
        data: async () =>
          holeIfZero(
            info.dtype === to
              ? await ck.read(info.name)
              : fromFloat32(toFloat32(await ck.read(info.name), info.dtype), to),
          ),
      });
    } else {
      tensors.push({
        name: info.name,
        dtype: info.dtype,
        shape: info.shape,
        data: async () => holeIfZero(await ck.read(info.name)),
      });
    }
  }
  await writeSafetensors(out, tensors, {
    metadata,
    overwrite: opts.force ?? false,
    onProgress: opts.onProgress,
  });
}

/** Bytes of source rows quantized at once by default. */
const ROW_BLOCK_BYTES = 1 << 22;

/** True when every byte is zero (on real weights the first word already says no). */
function isAllZero(bytes: Uint8Array): boolean {
  const head = (4 - (bytes.byteOffset % 4)) % 4;
  if (bytes.length < head + 4) return bytes.every((b) => b === 0);
  for (let i = 0; i < head; i++) if (bytes[i] !== 0) return false;
  const words = Math.floor((bytes.length - head) / 4);
  const w = new Uint32Array(bytes.buffer, bytes.byteOffset + head, words);
  for (let i = 0; i < words; i++) if (w[i] !== 0) return false;
  for (let i = head + words * 4; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** `bytes`, or their length when all are zero (a hole for the writer). */
function holeIfZero(bytes: Uint8Array): Uint8Array | number {
  return bytes.length >= 1 << 16 && isAllZero(bytes) ? bytes.length : bytes;
}

/**
 * The tensor's rows quantized a block of about `rowBlockBytes` of stored rows at a time (read
 * in ranges when the checkpoint can, so only one block is in memory; else the tensor is read
 * once), their scales gathered in `scales`. Rows are quantized independently, so the bytes do not
 * depend on the block size; a block of zero rows quantizes to zeros without arithmetic.
 */
async function* quantizedRows(
  job: QuantJob,
  scales: Float32Array,
): AsyncIterable<Uint8Array | number> {
  const { ck, info, rows, cols, quant, rowBlockBytes } = job;
  const srcRow = info.byteLength / rows, qRow = quant === "q8" ? cols : cols / 2;
  const step = Math.max(1, Math.min(rows, Math.floor(rowBlockBytes / srcRow)));
  const whole = ck.readRange ? undefined : await ck.read(info.name);
  const raw = whole ? undefined : new Uint8Array(step * srcRow);
  const floats = new Float32Array(step * cols), out = new Uint8Array(step * qRow);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const bytes = whole
      ? whole.subarray(r0 * srcRow, (r0 + n) * srcRow)
      : await ck.readRange!(info.name, r0 * srcRow, raw!.subarray(0, n * srcRow));
    const s = scales.subarray((r0 * cols) / QBLOCK, ((r0 + n) * cols) / QBLOCK);
    if (isAllZero(bytes)) {
      s.fill(0);
      yield n * qRow;
      continue;
    }
    const values = toFloat32(bytes, info.dtype, floats.subarray(0, n * cols));
    const q = out.subarray(0, n * qRow);
    if (quant === "q8") quantizeQ8(values, new Int8Array(q.buffer, 0, q.length), s);
    else quantizeQ4(values, q, s);
    yield q;
  }
}

/** One matrix to quantize: rows × cols of `info` in `ck`. */
interface QuantJob {
  ck: Checkpoint;
  info: TensorInfo;
  rows: number;
  cols: number;
  quant: "q8" | "q4";
  rowBlockBytes: number;
}

/** `NAME` (quantized values) then `NAME.qscale` (bf16 scales), from one quantization. */
function quantizedPair(job: QuantJob): TensorToWrite[] {
  const { info, rows, cols, quant } = job;
  // The writer asks for NAME then NAME.qscale: the scales of the last quantization wait here.
  let scales: Float32Array | undefined;
  return [
    {
      name: info.name,
      dtype: quant === "q8" ? "I8" : "U8",
      shape: [rows, quant === "q8" ? cols : cols / 2],
      data: () => {
        scales = new Float32Array((rows * cols) / QBLOCK);
        return quantizedRows(job, scales);
      },
    },
    {
      name: `${info.name}.qscale`,
      dtype: scaleDtype(QUANT_FORMAT_VERSION),
      shape: [rows, cols / QBLOCK],
      data: () => {
        if (!scales) throw new Error(`internal: ${info.name}.qscale asked before ${info.name}`);
        // exact: the quantizer rounded every scale to bf16 already
        const halves = f32ToBf16(scales);
        scales = undefined;
        return holeIfZero(new Uint8Array(halves.buffer));
      },
    },
  ];
}
