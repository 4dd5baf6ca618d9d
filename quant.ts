/**
 * The quantized format's block math (q8, q4: blocks of 32 values with a scale), for scripts that
 * read or write quantized tensors themselves. The file format is described in
 * `docs/QUANT_FORMAT.md`.
 *
 * @example
 * ```ts
 * import { dequantizeQ8, quantizeQ8 } from "./quant.ts";
 * const values = new Float32Array(64).map((_, i) => Math.sin(i));
 * const { q, scales } = quantizeQ8(values);
 * const back = dequantizeQ8(q, scales);
 * ```
 * @module
 */

export * from "./lib/quant/mod.ts";
export type {
  Checkpoint,
  CheckpointFormat,
  CheckpointLimits,
  DType,
  OpenCheckpointOptions,
  TensorInfo,
} from "./lib/formats/checkpoint.ts";
export type { ModelSpec, RwkvVersion } from "./lib/spec/spec.ts";
