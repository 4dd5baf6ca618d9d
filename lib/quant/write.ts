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
import { type TensorToWrite, writeSafetensors } from "../formats/safetensors.ts";
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
 * Writes `ck` as a `rwkv-deno-quant` SafeTensors file at `out`, tensor by tensor (peak memory
 * about the largest tensor), atomically (nothing is left at `out` on failure). Large matrices
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

  const tensors: TensorToWrite[] = [];
  for (const info of ck.tensors.values()) {
    const sq = squeezed(info.shape);
    const large = isLargeMatrix(info.name, info.shape) && FLOATS.has(info.dtype);
    const blocks = isQuantizable(info.name, info.shape) && FLOATS.has(info.dtype) &&
      sq[1] % QBLOCK === 0;
    if (blocks && (quant === "q8" || quant === "q4")) {
      tensors.push(...quantizedPair(ck, info, sq[0], sq[1], quant));
    } else if (large && (quant === "f32" || quant === "f16" || quant === "bf16")) {
      const to = FLOAT[quant];
      tensors.push({
        name: info.name,
        dtype: to,
        shape: info.shape,
        data: async () =>
          info.dtype === to
            ? await ck.read(info.name)
            : fromFloat32(toFloat32(await ck.read(info.name), info.dtype), to),
      });
    } else {
      tensors.push({
        name: info.name,
        dtype: info.dtype,
        shape: info.shape,
        data: () => ck.read(info.name),
      });
    }
  }
  await writeSafetensors(out, tensors, {
    metadata,
    overwrite: opts.force ?? false,
    onProgress: opts.onProgress,
  });
}

/** `NAME` (quantized values) then `NAME.qscale` (bf16 scales), from one quantization. */
function quantizedPair(
  ck: Checkpoint,
  info: TensorInfo,
  rows: number,
  cols: number,
  quant: "q8" | "q4",
): TensorToWrite[] {
  // The writer asks for NAME then NAME.qscale: the scales of the last quantization wait here.
  let scales: Float32Array | undefined;
  return [
    {
      name: info.name,
      dtype: quant === "q8" ? "I8" : "U8",
      shape: [rows, quant === "q8" ? cols : cols / 2],
      data: async () => {
        const values = toFloat32(await ck.read(info.name), info.dtype);
        const r = quant === "q8" ? quantizeQ8(values) : quantizeQ4(values);
        scales = r.scales;
        return new Uint8Array(r.q.buffer, r.q.byteOffset, r.q.byteLength);
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
        return new Uint8Array(halves.buffer);
      },
    },
  ];
}
