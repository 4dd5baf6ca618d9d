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
 * Subpath exports carry the rest: `./formats` (checkpoint readers and writers), `./convert`
 * (SafeTensors, quantized files, LoRA merges), `./quant` (block math), `./chat`, `./server`
 * (OpenAI-compatible), `./backend` (the interface for backend authors).
 * @module
 */

export { loadModel, type LoadModelOptions } from "./lib/load.ts";
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
  FormatError,
  ModelError,
  RwkvError,
  TokenizerError,
  UnsafePickleError,
  UsageError,
} from "./lib/errors.ts";
