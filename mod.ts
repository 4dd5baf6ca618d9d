/**
 * The RWKV toolkit for Deno: load, convert, quantize and run RWKV-4, 5, 6 and 7 language
 * models from TypeScript, with nothing but Deno.
 *
 * @example
 * ```ts ignore
 * import { generate, loadModel, loadTokenizer } from "./mod.ts";
 *
 * const model = await loadModel("RWKV-x070-World-0.1B.pth", { dtype: "q8", threads: 2 });
 * const tokenizer = await loadTokenizer("rwkv_vocab_v20230424.txt");
 * for await (const piece of generate(model, tokenizer, "Hello", { maxTokens: 50 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * await model.dispose();
 * ```
 * @module
 */

export { loadModel, type LoadModelOptions } from "./lib/load.ts";
export type { ResolveOptions } from "./lib/fetch.ts";
export { type BatchItem, Model, type ModelInfo } from "./lib/model/model.ts";
export { State, stateShapes } from "./lib/model/state.ts";
export { detectSpec, type ModelSpec, type RwkvVersion } from "./lib/model/spec.ts";
export type { WeightDType } from "./lib/model/weights.ts";
export type { StorageDType } from "./lib/model/tensor.ts";
export { openCheckpoint } from "./lib/formats/open.ts";
export type {
  Checkpoint,
  CheckpointFormat,
  CheckpointLimits,
  DType,
  OpenCheckpointOptions,
  TensorInfo,
} from "./lib/formats/checkpoint.ts";
export { DEFAULT_LIMITS } from "./lib/formats/checkpoint.ts";
export {
  openSafetensors,
  type SafetensorsCheckpoint,
  type SafetensorsTensorInfo,
  type TensorToWrite,
  writeSafetensors,
  type WriteSafetensorsOptions,
} from "./lib/formats/safetensors.ts";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "./lib/formats/dtype.ts";
export { type ConvertOptions, convertToSafetensors } from "./convert/safetensors.ts";
export { generate, type GenerateOptions, type GenerateStats } from "./lib/generate.ts";
export { perplexity, type PerplexityOptions, type PerplexityResult } from "./lib/perplexity.ts";
export { writePth, type WritePthOptions } from "./lib/formats/pth_write.ts";
export { type ResolvedSamplerOptions, Sampler, type SamplerOptions } from "./lib/sample.ts";
export { findTokenizerFor, loadTokenizer, type Tokenizer } from "./lib/tokenizer/mod.ts";
export {
  FormatError,
  ModelError,
  RwkvError,
  TokenizerError,
  UnsafePickleError,
  UsageError,
} from "./lib/errors.ts";
