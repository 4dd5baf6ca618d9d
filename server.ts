/**
 * An OpenAI-compatible server for one RWKV model: what `cli/serve.ts` runs.
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./server.ts";
 * const server = startServer({ model, tokenizer, port: 8000 });
 * await server.shutdown();
 * ```
 * @module
 */

export * from "./lib/server/mod.ts";
