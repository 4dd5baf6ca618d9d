/**
 * An OpenAI-compatible server for one RWKV model: what `cli/serve.ts` runs.
 *
 * @example
 * ```ts
 * import { type Model, startServer, type Tokenizer } from "./server.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const server = startServer({ model, tokenizer, port: 8000 });
 * await server.shutdown();
 * ```
 * @module
 */

export * from "./lib/server/mod.ts";
