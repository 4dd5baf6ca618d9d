/**
 * The RWKV toolkit for Deno: load, convert, quantize and run RWKV-4, 5, 6 and 7 language
 * models from TypeScript, with nothing but Deno.
 *
 * @example
 * ```ts
 * import { generate, loadModel, loadTokenizer } from "./mod.ts";
 *
 * const model = await loadModel("RWKV-x070-World-0.1B.pth", { dtype: "q8", threads: 2 });
 * const tokenizer = await loadTokenizer("rwkv_vocab_v20230424.txt");
 * for await (const piece of generate(model, tokenizer, "Hello", { maxTokens: 50 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * await model.dispose();
 * ```
 * Subpath exports carry the rest: `./formats` (checkpoint readers and writers), `./convert`
 * (SafeTensors, quantized files, LoRA merges), `./quant` (block math), `./chat`, `./server`
 * (OpenAI-compatible), `./backend` (the interface for backend authors), `./grammar` (structured
 * output: JSON Schema, GBNF, JSON mode; its main names are here too).
 * @module
 */

export { loadModel, type LoadModelOptions } from "./lib/load.ts";
export type { BackendName } from "./lib/backend/mod.ts";
export type { ResolveOptions } from "./lib/fetch.ts";
export type { CheckpointLimits } from "./lib/formats/checkpoint.ts";
export { type BatchItem, Model, type ModelInfo } from "./lib/model/model.ts";
export { State, stateShapes } from "./lib/model/state.ts";
export type { ModelSpec, RwkvVersion } from "./lib/spec/spec.ts";
export type { WeightDType } from "./lib/model/weights.ts";
export type { StorageDType } from "./lib/model/tensor.ts";
export {
  type BatchRequest,
  type BatchResult,
  generate,
  generateBatch,
  type GenerateOptions,
  type GenerateStats,
} from "./lib/generate.ts";
export { Pipeline, PIPELINE_ARGS, type PipelineArgs, type PipelineModel } from "./lib/pipeline.ts";
export { perplexity, type PerplexityOptions, type PerplexityResult } from "./lib/perplexity.ts";
export { type ResolvedSamplerOptions, Sampler, type SamplerOptions } from "./lib/sample.ts";
export { findTokenizerFor, loadTokenizer, type Tokenizer } from "./lib/tokenizer/mod.ts";
export {
  compileGbnf,
  compileJsonSchema,
  Constraint,
  type ConstraintOptions,
  Grammar,
  GrammarError,
  jsonObjectGrammar,
} from "./lib/grammar/mod.ts";
export {
  FormatError,
  ModelError,
  OutOfMemoryError,
  RwkvError,
  TokenizerError,
  UnsafePickleError,
  UsageError,
} from "./lib/errors.ts";

// Deprecated: the names that left mod.ts in 0.1.0 without a word (CHANGELOG.md), back for one
// release as aliases marked @deprecated (editors strike them through) and @ignore (kept out of the
// documentation). They leave mod.ts in 0.2.0.
import {
  bf16ToF32 as bf16ToF32_,
  type Checkpoint as Checkpoint_,
  type CheckpointFormat as CheckpointFormat_,
  type DType as DType_,
  f16ToF32 as f16ToF32_,
  f32ToBf16 as f32ToBf16_,
  f32ToF16 as f32ToF16_,
  openCheckpoint as openCheckpoint_,
  openSafetensors as openSafetensors_,
  type SafetensorsCheckpoint as SafetensorsCheckpoint_,
  type SafetensorsTensorInfo as SafetensorsTensorInfo_,
  type TensorInfo as TensorInfo_,
  type TensorToWrite as TensorToWrite_,
  toFloat32 as toFloat32_,
  writePth as writePth_,
  type WritePthOptions as WritePthOptions_,
  writeSafetensors as writeSafetensors_,
  type WriteSafetensorsOptions as WriteSafetensorsOptions_,
} from "./formats.ts";
import {
  type ConvertOptions as ConvertOptions_,
  convertToSafetensors as convertToSafetensors_,
} from "./convert.ts";
import { detectSpec as detectSpec_ } from "./backend.ts";

/**
 * @deprecated Import `openCheckpoint` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const openCheckpoint: typeof openCheckpoint_ = openCheckpoint_;
/**
 * @deprecated Import `openSafetensors` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const openSafetensors: typeof openSafetensors_ = openSafetensors_;
/**
 * @deprecated Import `writeSafetensors` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const writeSafetensors: typeof writeSafetensors_ = writeSafetensors_;
/**
 * @deprecated Import `bf16ToF32` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const bf16ToF32: typeof bf16ToF32_ = bf16ToF32_;
/**
 * @deprecated Import `f16ToF32` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const f16ToF32: typeof f16ToF32_ = f16ToF32_;
/**
 * @deprecated Import `f32ToBf16` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const f32ToBf16: typeof f32ToBf16_ = f32ToBf16_;
/**
 * @deprecated Import `f32ToF16` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const f32ToF16: typeof f32ToF16_ = f32ToF16_;
/**
 * @deprecated Import `toFloat32` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const toFloat32: typeof toFloat32_ = toFloat32_;
/**
 * @deprecated Import `writePth` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const writePth: typeof writePth_ = writePth_;
/**
 * @deprecated Import `convertToSafetensors` from `./convert` (`convert.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const convertToSafetensors: typeof convertToSafetensors_ = convertToSafetensors_;
/**
 * @deprecated Import `detectSpec` from `./backend` (`backend.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export const detectSpec: typeof detectSpec_ = detectSpec_;
/**
 * @deprecated Import `Checkpoint` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type Checkpoint = Checkpoint_;
/**
 * @deprecated Import `CheckpointFormat` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type CheckpointFormat = CheckpointFormat_;
/**
 * @deprecated Import `DType` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type DType = DType_;
/**
 * @deprecated Import `TensorInfo` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type TensorInfo = TensorInfo_;
/**
 * @deprecated Import `SafetensorsCheckpoint` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type SafetensorsCheckpoint = SafetensorsCheckpoint_;
/**
 * @deprecated Import `SafetensorsTensorInfo` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type SafetensorsTensorInfo = SafetensorsTensorInfo_;
/**
 * @deprecated Import `TensorToWrite` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type TensorToWrite = TensorToWrite_;
/**
 * @deprecated Import `WriteSafetensorsOptions` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type WriteSafetensorsOptions = WriteSafetensorsOptions_;
/**
 * @deprecated Import `WritePthOptions` from `./formats` (`formats.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type WritePthOptions = WritePthOptions_;
/**
 * @deprecated Import `ConvertOptions` from `./convert` (`convert.ts`); it leaves `mod.ts` in 0.2.0.
 * @ignore
 */
export type ConvertOptions = ConvertOptions_;
