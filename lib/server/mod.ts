/**
 * An OpenAI-compatible server for one RWKV model, on `Deno.serve`.
 *
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * import { startServer } from "./mod.ts";
 * const server = startServer({ model, tokenizer, port: 8000 }); // http://127.0.0.1:8000/
 * await server.shutdown();
 * ```
 * @module
 */

import { type Api, type ApiOptions, createApi } from "./openai.ts";

export { type Api, type ApiOptions, createApi } from "./openai.ts";
export type { Model } from "../model/model.ts";
export type { State } from "../model/state.ts";
export type { Sampler } from "../sample.ts";
export type { Tokenizer } from "../tokenizer/mod.ts";
export {
  type FinishReason,
  QueueFullError,
  Scheduler,
  type SchedulerOptions,
  type SchedulerStats,
  type Sequence,
  type SequenceJob,
  type SequenceResult,
  type TokenConstraint,
} from "./scheduler.ts";
export { MAX_TOP_LOGPROBS, type TokenLogprob } from "./logprobs.ts";
export { TOOL_TEMPLATE, type ToolCall, type ToolChoice, type ToolDef } from "./tools.ts";
export {
  decodeState,
  encodeState,
  modelIdentity,
  StateBank,
  type StateMeta,
  StateMismatchError,
  weightsHash,
} from "./states.ts";
export {
  MemoryStore,
  type MemoryStoreOptions,
  openStore,
  type StateStore,
  StoreUnavailableError,
} from "./store.ts";
export {
  type ChatTemplate,
  encodeChat,
  type EncodedChat,
  type TemplateMessage,
  WORLD_STOPS,
  WORLD_TEMPLATE,
} from "./template.ts";

/**
 * Options of {@link startServer}: the API's plus where to listen.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const opts: ServerOptions = { model, tokenizer, hostname: "127.0.0.1", port: 0 };
 * ```
 */
export interface ServerOptions extends ApiOptions {
  /** Interface to bind (default 127.0.0.1: only this machine). */
  hostname?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Called once listening, with the address. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Shuts the server down when aborted. */
  signal?: AbortSignal;
}

/**
 * A running server.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const s = startServer({ model, tokenizer, port: 0 });
 * console.log(s.url); await s.shutdown();
 * ```
 */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8000`. */
  readonly url: string;
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** The API behind it (scheduler, store). */
  readonly api: Api;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops accepting, ends open connections, resolves when done. */
  shutdown(): Promise<void>;
}

/**
 * Starts the server (127.0.0.1:8000 by default).
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const server = startServer({ model, tokenizer, port: 0, maxBatch: 8, queue: 16 });
 * const res = await fetch(`${server.url}/v1/models`);
 * ```
 */
export function startServer(options: ServerOptions): RunningServer {
  const api = createApi(options);
  // stopping by signal ends running generations too (their clients get the end of the stream)
  options.signal?.addEventListener("abort", () => api.close(), { once: true });
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8000,
    signal: options.signal,
    onListen: () => {},
  }, api.handler);
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  options.onListen?.(addr);
  return {
    url: `http://${host}:${addr.port}`,
    addr,
    api,
    finished: server.finished,
    shutdown: async () => {
      api.scheduler.close();
      await server.shutdown();
      await api.close();
    },
  };
}
