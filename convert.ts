/**
 * Conversions: `.pth` / rwkv.cpp to SafeTensors, to the compact quantized format (q8, q4), RWKV-6/7
 * to GGUF (llama.cpp, Ollama), and LoRA merges — what `cli/convert.ts` and `cli/merge_lora.ts` run.
 *
 * @example
 * ```ts
 * import { writeQuantized } from "./convert.ts";
 * import { openCheckpoint } from "./formats.ts";
 * const ck = await openCheckpoint("model.pth");
 * await writeQuantized(ck, "model-q8.safetensors", { quant: "q8" });
 * ck.close();
 * ```
 * @module
 */

export { type ConvertOptions, convertToSafetensors } from "./convert/safetensors.ts";
export {
  type QuantScheme,
  writeQuantized,
  type WriteQuantizedOptions,
} from "./convert/quantize.ts";
export {
  escapeRwkvToken,
  type GgufType,
  writeGgufModel,
  type WriteGgufModelOptions,
} from "./convert/gguf.ts";
export {
  applyLora,
  findLoraPairs,
  mergeLora,
  type MergeLoraOptions,
  type MergeLoraReport,
} from "./convert/lora.ts";
export type {
  Checkpoint,
  CheckpointFormat,
  CheckpointLimits,
  DType,
  OpenCheckpointOptions,
  TensorInfo,
} from "./lib/formats/checkpoint.ts";
