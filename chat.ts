/**
 * Multi-turn chat in the RWKV World format, the state kept between turns: what `cli/chat.ts`
 * runs.
 *
 * @example
 * ```ts
 * import { ChatSession, type Model, type Tokenizer } from "./chat.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const chat = new ChatSession(model, tokenizer);
 * for await (const piece of chat.send("Hello!")) Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * ```
 * @module
 */

export * from "./lib/chat.ts";
export type { ResolvedSamplerOptions, SamplerOptions } from "./lib/sample.ts";
export type { State } from "./lib/model/state.ts";
export type { BatchItem, Model, ModelInfo } from "./lib/model/model.ts";
export type { ModelSpec, RwkvVersion } from "./lib/spec/spec.ts";
export type { StorageDType } from "./lib/model/tensor.ts";
export type { Tokenizer } from "./lib/tokenizer/mod.ts";
