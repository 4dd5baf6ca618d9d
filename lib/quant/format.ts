/**
 * The compact quantized model file (`rwkv-deno-quant`, docs/QUANT_FORMAT.md): its name, its
 * versions, which tensors it quantizes, and the reader's validation. The writer is `write.ts`,
 * the block math `block.ts`.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint, DType, TensorInfo } from "../formats/checkpoint.ts";
import { type ModelSpec, squeezed } from "../spec/spec.ts";
import { QBLOCK } from "./block.ts";

/**
 * `__metadata__.format` of the compact quantized model file (docs/QUANT_FORMAT.md).
 * @example
 * ```ts
 * import { QUANT_FORMAT } from "./format.ts";
 * console.log(QUANT_FORMAT); // "rwkv-deno-quant"
 * ```
 */
export const QUANT_FORMAT = "rwkv-deno-quant";

/**
 * Major version of that format this toolkit writes; this reader reads versions 1 to this one.
 * Version 2 quantized the embedding too; version 3 stores block scales as BF16 instead of F16
 * (an f16 scale underflows to 0 for blocks whose largest magnitude is under ~7.6e-6).
 * @example
 * ```ts
 * import { QUANT_FORMAT_VERSION } from "./format.ts";
 * console.log(`writes version ${QUANT_FORMAT_VERSION}`);
 * ```
 */
export const QUANT_FORMAT_VERSION = 3;

/**
 * The dtype of the `.qscale` tensors in a file of a given major version: F16 up to version 2,
 * BF16 from version 3.
 * @example
 * ```ts
 * import { scaleDtype } from "./format.ts";
 * console.log(scaleDtype(2), scaleDtype(3)); // F16 BF16
 * ```
 */
export function scaleDtype(major: number): "F16" | "BF16" {
  return major >= 3 ? "BF16" : "F16";
}

/**
 * The large projection matrices (every block's, and `head.weight`): a `.weight` of two
 * dimensions (size-1 dimensions dropped) that is neither the embedding nor a layer norm.
 * @example
 * ```ts
 * import { isLargeMatrix } from "./format.ts";
 * console.log(isLargeMatrix("blocks.0.att.key.weight", [768, 768])); // true
 * console.log(isLargeMatrix("blocks.0.ln1.weight", [768])); // false
 * ```
 */
export function isLargeMatrix(name: string, shape: readonly number[]): boolean {
  return squeezed(shape).length === 2 && name.endsWith(".weight") &&
    name !== "emb.weight" && !/\.ln[0-9a-z_]*\.weight$/.test(name);
}

/**
 * Whether a tensor is stored block-quantized in a q8/q4 file (from version 2): the large
 * matrices and the embedding.
 * @example
 * ```ts
 * import { isQuantizable } from "./format.ts";
 * console.log(isQuantizable("emb.weight", [65536, 768])); // true
 * ```
 */
export function isQuantizable(name: string, shape: readonly number[]): boolean {
  return isLargeMatrix(name, shape) || (name === "emb.weight" && squeezed(shape).length === 2);
}

/**
 * How one matrix of a `rwkv-deno-quant` file is stored.
 * @example
 * ```ts
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * declare const ck: Checkpoint;
 * const q: QuantizedMatrix = quantizedMatrices(ck).get("head.weight")!;
 * ```
 */
export interface QuantizedMatrix {
  /** The scheme. */
  quant: "q8" | "q4";
  /** Rows of the matrix. */
  rows: number;
  /** Columns of the matrix (values, not bytes). */
  cols: number;
  /** Its `.qscale` tensor: `[rows, cols/32]` of F16 (version ≤ 2) or BF16 (version 3). */
  scale: TensorInfo;
}

const SCHEMES = ["q8", "q4", "bf16", "f16", "f32"];

/**
 * The integer-stored matrices of a `rwkv-deno-quant` file, checked against its metadata:
 * name → how it is stored. Empty for any other checkpoint. Every contradiction is a
 * FormatError naming the file and the tensor or field.
 * @example
 * ```ts
 * import { quantizedMatrices } from "./format.ts";
 * import { openCheckpoint } from "../formats/open.ts";
 * const ck = await openCheckpoint("../shared/fixtures/tiny-rwkv-7v0.safetensors");
 * console.log(quantizedMatrices(ck).size); // 0: a float checkpoint
 * ck.close();
 * ```
 */
export function quantizedMatrices(
  ck: Checkpoint,
  spec?: ModelSpec,
): Map<string, QuantizedMatrix> {
  const out = new Map<string, QuantizedMatrix>();
  // A container that stores our schemes itself (GGUF's Q8_0/Q5_0/Q4_0) lists them.
  if (ck.blockQuantized) return new Map(ck.blockQuantized);
  const meta = ck.metadata as Record<string, unknown>;
  if (meta.format !== QUANT_FORMAT) return out;
  const field = (k: string): string => {
    const v = meta[k];
    if (typeof v !== "string" || v === "") {
      throw new FormatError(ck.path, `__metadata__.${k}`, `missing (required by ${QUANT_FORMAT})`);
    }
    return v;
  };
  const version = field("format_version");
  const major = Number(version.split(".")[0]);
  if (!/^\d+(\.\d+)*$/.test(version) || major < 1 || major > QUANT_FORMAT_VERSION) {
    throw new FormatError(
      ck.path,
      "__metadata__.format_version",
      `${QUANT_FORMAT} version ${version} is not supported (this reader knows 1 to ${QUANT_FORMAT_VERSION})`,
    );
  }
  // Which tensors may be stored quantized in this version of the format.
  const quantizable = major >= 2 ? isQuantizable : isLargeMatrix;
  const scaleType: DType = scaleDtype(major);
  const quant = field("quant");
  if (!SCHEMES.includes(quant)) {
    throw new FormatError(ck.path, "__metadata__.quant", `unknown scheme ${JSON.stringify(quant)}`);
  }
  if (field("block_size") !== String(QBLOCK)) {
    throw new FormatError(
      ck.path,
      "__metadata__.block_size",
      `${meta.block_size}, expected ${QBLOCK}`,
    );
  }
  const rwkvVersion = field("rwkv_version");
  if (spec && rwkvVersion !== spec.version) {
    throw new FormatError(
      ck.path,
      "__metadata__.rwkv_version",
      `says ${rwkvVersion} but the tensors are RWKV-${spec.version}`,
    );
  }
  for (const [name, scale] of ck.tensors) {
    if (!name.endsWith(".qscale")) continue;
    const base = name.slice(0, -".qscale".length);
    const t = ck.tensors.get(base);
    const bad = (msg: string, at = base) => new FormatError(ck.path, at, msg);
    if (!t) throw bad(`scales without their matrix ${base}`, name);
    if (quant !== "q8" && quant !== "q4") {
      throw bad(`quant is ${quant} but the file holds block scales`, name);
    }
    const want = quant === "q8" ? "I8" : "U8";
    if (t.dtype !== want) throw bad(`stored as ${t.dtype}, but quant ${quant} stores ${want}`);
    if (t.shape.length !== 2 || !quantizable(base, t.shape)) {
      throw bad(`shape [${t.shape}] is not a [rows, cols] matrix this format version quantizes`);
    }
    if (scale.dtype !== scaleType) {
      throw bad(
        `scales are ${scale.dtype}, expected ${scaleType} (format version ${version})`,
        name,
      );
    }
    const rows = t.shape[0];
    const cols = quant === "q8" ? t.shape[1] : t.shape[1] * 2;
    if (
      scale.shape.length !== 2 || scale.shape[0] !== rows || scale.shape[1] * QBLOCK !== cols
    ) {
      throw bad(
        `scale shape [${scale.shape}] does not fit the ${rows}×${cols} matrix (needs [${rows}, ${
          cols / QBLOCK
        }])`,
        name,
      );
    }
    out.set(base, { quant, rows, cols, scale });
  }
  for (const [name, t] of ck.tensors) {
    if ((t.dtype === "I8" || t.dtype === "U8") && quantizable(name, t.shape) && !out.has(name)) {
      throw new FormatError(ck.path, name, `integer matrix without its ${name}.qscale scales`);
    }
  }
  return out;
}
