/**
 * OpenAI-compatible HTTP API over one model: `GET /v1/models` and `/v1/models/{id}`,
 * `POST /v1/completions`, `POST /v1/chat/completions` (streamed as server-sent events or whole),
 * `POST /v1/responses` with `GET`/`DELETE /v1/responses/{id}` (see `_responses.ts`), stored
 * states at `/v1/states/{name}`, `GET /health`, and a small chat page at `/`.
 *
 * Every generation runs in one {@link Scheduler} (continuous batching). Chat completions resume
 * from the cached state of the longest conversation prefix already seen (token-exact; reported
 * as `usage.prompt_tokens_details.cached_tokens`).
 * @module
 */

import type { Model } from "../model/model.ts";
import type { State } from "../model/state.ts";
import { RwkvError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import type { Core } from "./_core.ts";
import { corsHeaders } from "./_cors.ts";
import { handleHealth } from "./_health.ts";
import { errorResponse, HttpError } from "./_http.ts";
import { PrefixCache } from "./_prefix_cache.ts";
import { route, type Routes } from "./_router.ts";
import { Scheduler } from "./scheduler.ts";
import { modelIdentity, StateBank } from "./states.ts";
import { MemoryStore, type StateStore } from "./store.ts";
import { type ChatTemplate, validateTemplate, WORLD_STOPS, WORLD_TEMPLATE } from "./template.ts";

/**
 * Options of {@link createApi}.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const api = createApi({ model, tokenizer, modelName: "rwkv-7-0.1b", maxBatch: 8, queue: 32 });
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, api.handler);
 * ```
 */
export interface ApiOptions {
  /** The model every request runs on (the server's scheduler owns its passes). */
  model: Model;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** The id shown by `/v1/models` (default: the file name of the model). */
  modelName?: string;
  /** More names requests may use for the model (any other name gets 404 `model_not_found`). */
  aliases?: readonly string[];
  /** Sequences decoded together in one batch (default 8). */
  maxBatch?: number;
  /** Old name of {@link ApiOptions.maxBatch}. */
  concurrency?: number;
  /** Prompt tokens read per step across joining requests (default 256). */
  maxPrefillTokensPerStep?: number;
  /** Requests allowed to wait for a place in the batch (default 16); beyond, 429. */
  queue?: number;
  /** When set, `/v1/*` needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); beyond, 413. */
  maxBodyBytes?: number;
  /** `max_tokens` when a request gives none (default 256). */
  defaultMaxTokens?: number;
  /** Largest `max_tokens` accepted (default 4096). */
  maxTokensLimit?: number;
  /** Longest prompt accepted, in tokens (default 16384); beyond, 400 `prompt_too_long`. */
  maxPromptTokens?: number;
  /** Origins allowed by CORS (`*` for any); default none. */
  cors?: readonly string[];
  /** Chat template (default RWKV World's). */
  template?: ChatTemplate;
  /** Stop strings of chat replies (default `["\n\n", "\nUser:"]`). */
  stop?: readonly string[];
  /** Where states and stored responses live (default: an in-process store of 1 GiB). */
  store?: StateStore;
  /** Seconds stored responses and cached states live (default 86400; 0: until evicted). */
  stateTtlSeconds?: number;
  /** Resume chat completions from cached prefixes (default true). */
  prefixCache?: boolean;
  /** States requests may start from by name (`"state": NAME`), e.g. state-tuned files. */
  namedStates?: ReadonlyMap<string, State>;
  /** Sent as `x-rwkv-server` on every response: which replica answered. */
  serverId?: string;
}

/**
 * The API: a `Deno.serve` handler plus live counters.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const api = createApi({ model, tokenizer });
 * console.log(api.scheduler.stats().running);
 * await api.close();
 * ```
 */
export interface Api {
  /** The `Deno.serve` handler. */
  handler: (req: Request) => Promise<Response>;
  /** The batching scheduler (live counters: `scheduler.stats()`). */
  readonly scheduler: Scheduler;
  /** The model's id in the API. */
  readonly modelName: string;
  /** Where states and stored responses live. */
  readonly store: StateStore;
  /** Cancels running generations and closes the store it made (not one passed in). */
  close(): Promise<void>;
}

function positive(name: string, v: number | undefined, def: number): number {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  return n;
}

/**
 * Creates the API handler for one model.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const api = createApi({ model, tokenizer, maxBatch: 8, queue: 16, apiKey: "secret" });
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, api.handler);
 * ```
 */
export function createApi(options: ApiOptions): Api {
  const { model, tokenizer } = options;
  const scheduler = new Scheduler(model, {
    maxBatch: options.maxBatch ?? options.concurrency ?? 8,
    maxPrefillTokensPerStep: options.maxPrefillTokensPerStep ?? 256,
    maxQueue: options.queue ?? 16,
  });
  const modelName = options.modelName ??
    (model.info.path.split(/[\\/]/).pop() ?? "rwkv").replace(/\.(pth|safetensors|bin)$/, "");
  const template = options.template ?? WORLD_TEMPLATE;
  validateTemplate(template);
  const store = options.store ?? new MemoryStore();
  const ttl = options.stateTtlSeconds ?? 86400;
  let bankP: Promise<StateBank> | undefined;
  const bank = () =>
    bankP ??= modelIdentity(model).then((id) => new StateBank(store, model, id, ttl));
  const core: Core = {
    model,
    tokenizer,
    scheduler,
    bank,
    modelName,
    names: new Set([modelName, ...(options.aliases ?? [])]),
    template,
    stops: options.stop ?? WORLD_STOPS,
    maxBody: positive("maxBodyBytes", options.maxBodyBytes, 1024 * 1024),
    defaultMaxTokens: positive("defaultMaxTokens", options.defaultMaxTokens, 256),
    maxTokensLimit: positive("maxTokensLimit", options.maxTokensLimit, 4096),
    maxPromptTokens: positive("maxPromptTokens", options.maxPromptTokens, 16384),
    prefixCache: options.prefixCache ?? true,
    namedStates: options.namedStates ?? new Map(),
    created: Math.floor(Date.now() / 1000),
  };
  const cors = new Set(options.cors ?? []);
  const started = Date.now();

  const routes: Routes = {
    core,
    apiKey: options.apiKey,
    prefixes: new PrefixCache(core),
    health: () =>
      handleHealth(core, store, started, async () => bankP ? (await bankP).identity : undefined),
  };

  async function handler(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
    let res: Response;
    if (req.method === "OPTIONS") {
      // CORS preflight (and plain OPTIONS): answered without auth, allowing only --cors origins
      res = new Response(null, {
        status: 204,
        headers: { allow: "GET, HEAD, POST, PUT, DELETE, OPTIONS" },
      });
    } else {
      try {
        res = await route(routes, req, path);
      } catch (e) {
        if (e instanceof HttpError) res = errorResponse(e);
        else if (e instanceof RwkvError) res = errorResponse(new HttpError(400, e.message));
        else {
          console.error(e);
          res = errorResponse(new HttpError(500, "internal error", "server_error"));
        }
      }
    }
    for (const [k, v] of Object.entries(corsHeaders(cors, req))) res.headers.set(k, v);
    if (options.serverId) res.headers.set("x-rwkv-server", options.serverId);
    return res;
  }

  return {
    handler,
    scheduler,
    modelName,
    store,
    async close() {
      scheduler.close();
      if (!options.store) await store.close(); // a store passed in is the caller's to close
    },
  };
}
