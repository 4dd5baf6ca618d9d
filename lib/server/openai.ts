/**
 * OpenAI-compatible HTTP API over one model: `GET /v1/models` and `/v1/models/{id}`,
 * `POST /v1/completions`, `POST /v1/chat/completions` (streamed as server-sent events or whole),
 * `POST /v1/responses` with `GET`/`DELETE /v1/responses/{id}` (see `responses.ts`), stored
 * states at `/v1/states/{name}`, `GET /health`, and a small chat page at `/`.
 *
 * Every generation runs in one {@link Scheduler} (continuous batching). Chat completions resume
 * from the cached state of the longest conversation prefix already seen (token-exact; reported
 * as `usage.prompt_tokens_details.cached_tokens`).
 * @module
 */

import { CHAT_SAMPLING } from "../chat.ts";
import { RwkvError } from "../errors.ts";
import type { Model } from "../model/model.ts";
import type { State } from "../model/state.ts";
import { Sampler, type SamplerOptions } from "../sample.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import {
  checkModel,
  checkPromptLength,
  type Core,
  namedState,
  type RunResult,
  startRun,
  withStore,
} from "./_core.ts";
import {
  type Body,
  errorResponse,
  field,
  HttpError,
  isBool,
  isInt,
  isStr,
  json,
  methodNotAllowed,
  newId,
  range,
  readBytes,
  readJson,
  sink,
  SSE_HEADERS,
  sseEvent,
} from "./_http.ts";
import { finishReason, parseMessages, parseSampling } from "./_parse.ts";
import { handleResponses } from "./responses.ts";
import { Scheduler, type SchedulerStats } from "./scheduler.ts";
import { decodeState, encodeState, modelIdentity, StateBank, tokensHash } from "./states.ts";
import { MemoryStore, type StateStore } from "./store.ts";
import {
  type ChatTemplate,
  encodeChat,
  validateTemplate,
  WORLD_STOPS,
  WORLD_TEMPLATE,
} from "./template.ts";

/**
 * Options of {@link createApi}.
 * @example
 * ```ts ignore
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
 * ```ts ignore
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

interface Parsed {
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number;
  sampling: SamplerOptions;
  stop: string[];
}

function parseCommon(body: Body, core: Core, chat: boolean): Parsed {
  const maxTokens = field(body, "max_tokens", isInt, "an integer") ??
    field(body, "max_completion_tokens", isInt, "an integer") ?? core.defaultMaxTokens;
  range("max_tokens", maxTokens, 1, core.maxTokensLimit);
  const n = field(body, "n", isInt, "an integer");
  if (n !== undefined && n !== 1) {
    throw new HttpError(400, "only n = 1 is supported", "invalid_request_error", "n");
  }
  const stop = field(
    body,
    "stop",
    (v): v is string | string[] =>
      typeof v === "string" || (Array.isArray(v) && v.length <= 4 && v.every(isStr)),
    "a string or up to 4 strings",
  );
  const streamOptions = field(
    body,
    "stream_options",
    (v): v is { include_usage?: unknown } => typeof v === "object" && !Array.isArray(v),
    "an object",
  );
  const includeUsage = streamOptions?.include_usage ?? false;
  if (!isBool(includeUsage)) {
    throw new HttpError(
      400,
      "'stream_options.include_usage' must be a boolean",
      "invalid_request_error",
      "stream_options.include_usage",
    );
  }
  return {
    stream: field(body, "stream", isBool, "a boolean") ?? false,
    includeUsage,
    maxTokens,
    sampling: parseSampling(body, chat ? CHAT_SAMPLING : {}),
    stop: (typeof stop === "string" ? [stop] : stop ?? []).filter((s) => s.length > 0),
  };
}

let pageCache: string | undefined;
async function page(): Promise<string> {
  if (pageCache === undefined) {
    const res = await fetch(new URL("./static/index.html", import.meta.url));
    if (!res.ok) throw new Error(`chat page: HTTP ${res.status}`);
    pageCache = await res.text();
  }
  return pageCache;
}

function positive(name: string, v: number | undefined, def: number): number {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  return n;
}

/**
 * Creates the API handler for one model.
 * @example
 * ```ts ignore
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
  // prefix-cache keys depend on the state a fresh conversation starts from
  let initTagP: Promise<string> | undefined;
  const initTag = () =>
    initTagP ??= model.initialState
      ? tokensHash(Array.from(new Int32Array(model.initialState.data.buffer.slice(0))))
        .then((h) => h.slice(0, 16))
      : Promise.resolve("zero");
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

  /** The longest cached prefix of `tokens` ending at one of `boundaries`. */
  async function lookupPrefix(
    tokens: number[],
    boundaries: number[],
  ): Promise<{ state: State; cached: number } | undefined> {
    const b = await bank();
    const tag = await initTag();
    for (let i = boundaries.length - 1; i >= 0; i--) {
      const n = boundaries[i];
      if (n >= tokens.length) continue;
      const key = `prefix:${tag}:${await tokensHash(tokens.slice(0, n))}`;
      try {
        const got = await b.load(key);
        if (got) return { state: got.state, cached: n };
      } catch {
        // an unreachable store or a foreign state is only a cache miss here
        return undefined;
      }
    }
    return undefined;
  }

  async function savePrefix(tokens: readonly number[], state: State): Promise<void> {
    const b = await bank();
    const key = `prefix:${await initTag()}:${await tokensHash(tokens)}`;
    await b.save(key, state, { tokens: tokens.length }).catch(() => {});
  }

  // What follows a reply when a client sends it back (World: "\n\n"): fed after a reply that
  // did not end at a stop string, so the cached state lines up with the resent history.
  const [, replySuffix = ""] = template.assistant.split("{content}");
  const suffixTokens = tokenizer.encode(replySuffix);

  /** Caches the state after a reply under the tokens a client resending it will send. */
  async function cacheReply(
    prompt: readonly number[],
    r: RunResult,
    state: State,
    saves: Promise<void>[],
  ): Promise<void> {
    const key = [...prompt, ...r.tokens];
    if (r.reason === "stop" || suffixTokens.length === 0) {
      saves.push(savePrefix(key, state));
      return;
    }
    try {
      const seq = scheduler.submit({
        tokens: suffixTokens,
        state,
        sampler: new Sampler({ seed: 0 }),
        maxTokens: 0,
      });
      if ((await seq.done).reason === "length") {
        saves.push(savePrefix([...key, ...suffixTokens], state));
      }
    } catch {
      // the line is full: this reply is just not cached
    }
  }

  async function complete(req: Request, chat: boolean): Promise<Response> {
    const body = await readJson(req, core.maxBody);
    checkModel(core, body.model);
    const p = parseCommon(body, core, chat);
    const start = await namedState(core, body.state);
    let tokens: number[];
    let boundaries: number[] = [];
    if (chat) {
      ({ tokens, boundaries } = encodeChat(tokenizer, template, parseMessages(body.messages)));
    } else {
      const pr = body.prompt;
      let prompt: string;
      if (typeof pr === "string") prompt = pr;
      else if (Array.isArray(pr) && pr.length === 1 && isStr(pr[0])) prompt = pr[0];
      else {
        throw new HttpError(400, "'prompt' must be a string", "invalid_request_error", "prompt");
      }
      tokens = tokenizer.encode(prompt);
    }
    const param = chat ? "messages" : "prompt";
    if (tokens.length === 0) {
      throw new HttpError(400, "the prompt is empty", "invalid_request_error", param);
    }
    checkPromptLength(core, tokens.length, param);

    // Resume from the longest cached prefix (chat, from the default starting state only).
    const caching = chat && core.prefixCache && start === undefined;
    const hit = caching ? await lookupPrefix(tokens, boundaries) : undefined;
    const cached = hit?.cached ?? 0;
    const state = hit?.state ?? start ?? model.createState();
    const lastBoundary = boundaries.filter((b) => b > cached).at(-1);
    const saves: Promise<void>[] = [];

    const id = newId(chat ? "chatcmpl" : "cmpl");
    const created = Math.floor(Date.now() / 1000);
    const base = {
      id,
      object: chat ? (p.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion",
      created,
      model: modelName,
    };
    const usage = (r: RunResult) => ({
      prompt_tokens: tokens.length,
      completion_tokens: r.generatedTokens,
      total_tokens: tokens.length + r.generatedTokens,
      ...(chat && { prompt_tokens_details: { cached_tokens: cached } }),
    });
    const abort = new AbortController();
    const onGone = () => abort.abort();
    req.signal.addEventListener("abort", onGone, { once: true });
    let emit: (piece: string) => void = () => {};
    const run = startRun(core, {
      prompt: tokens.slice(cached),
      state,
      context: tokens,
      sampling: p.sampling,
      maxTokens: p.maxTokens,
      stops: chat ? [...core.stops, ...p.stop] : p.stop,
      trimStart: chat,
      feedLast: caching,
      checkpoints: caching && lastBoundary !== undefined ? [lastBoundary - cached] : undefined,
      onCheckpoint: (_pos, s) => saves.push(savePrefix(tokens.slice(0, lastBoundary), s.clone())),
      signal: abort.signal,
      onText: (piece) => emit(piece),
    });
    const finished = run.done.then(async (r) => {
      req.signal.removeEventListener("abort", onGone);
      if (caching && r.reason !== "abort") await cacheReply(tokens, r, state, saves);
      await Promise.all(saves);
      return r;
    }, (e) => {
      req.signal.removeEventListener("abort", onGone);
      throw e;
    });

    if (!p.stream) {
      let text = "";
      emit = (piece) => text += piece;
      const r = await finished;
      if (r.reason === "abort") throw new HttpError(499, "client closed the request");
      const choice = chat
        ? {
          index: 0,
          message: { role: "assistant", content: text },
          finish_reason: finishReason(r),
        }
        : { index: 0, text, logprobs: null, finish_reason: finishReason(r) };
      return json({ ...base, choices: [choice], usage: usage(r) });
    }

    const chunk = (content: string | undefined, finish: string | null, role = false) =>
      chat
        ? {
          ...base,
          choices: [{
            index: 0,
            delta: finish !== null ? {} : { ...(role && { role: "assistant" }), content },
            finish_reason: finish,
          }],
        }
        : {
          ...base,
          choices: [{ index: 0, text: content ?? "", logprobs: null, finish_reason: finish }],
        };
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const out = sink(controller);
        if (chat) out.send(sseEvent(chunk("", null, true)));
        emit = (piece) => out.send(sseEvent(chunk(piece, null)));
        finished.then((r) => {
          if (r.reason === "abort") return;
          out.send(sseEvent(chunk(chat ? undefined : "", finishReason(r))));
          if (p.includeUsage) {
            out.send(sseEvent({ ...base, choices: [], usage: usage(r) }));
          }
          out.send(new TextEncoder().encode("data: [DONE]\n\n"));
          out.close();
        }).catch((e) => {
          console.error(e);
          out.fail(e);
        });
      },
      cancel() {
        abort.abort(); // the client went away: the sequence leaves at the next step
      },
    });
    return new Response(stream, { headers: SSE_HEADERS });
  }

  async function states(req: Request, name: string): Promise<Response> {
    if (!/^[\w.-]{1,128}$/.test(name)) {
      throw new HttpError(400, "a state name is letters, digits, . _ - (at most 128)");
    }
    const b = await bank();
    const key = `named:${name}`;
    if (req.method === "GET") {
      const fixed = core.namedStates.get(name);
      const bytes = fixed
        ? encodeState(b.identity, fixed, { name })
        : await withStore(() => b.store.get(key));
      if (!bytes) {
        throw new HttpError(404, `no state named '${name}'`, undefined, null, "state_not_found");
      }
      return new Response(bytes, {
        headers: { "content-type": "application/octet-stream", "x-rwkv-model": b.identity },
      });
    }
    if (req.method === "PUT") {
      if (core.namedStates.has(name)) {
        throw new HttpError(409, `state '${name}' was loaded at start-up and cannot be replaced`);
      }
      const bytes = await readBytes(req, Math.max(core.maxBody, 64 * 1024 * 1024));
      const { state } = await withStore(() =>
        Promise.resolve().then(() => decodeState(model, b.identity, bytes, true))
      );
      await withStore(() => b.save(key, state, { name }, 0));
      return json({ object: "state", id: name, model: modelName, bytes: state.data.byteLength });
    }
    if (req.method === "DELETE") {
      if (core.namedStates.has(name)) {
        throw new HttpError(409, `state '${name}' was loaded at start-up and cannot be deleted`);
      }
      const deleted = await withStore(() => b.store.delete(key));
      if (!deleted) {
        throw new HttpError(404, `no state named '${name}'`, undefined, null, "state_not_found");
      }
      return json({ object: "state.deleted", id: name, deleted: true });
    }
    throw methodNotAllowed(req.method, `/v1/states/${name}`, ["GET", "PUT", "DELETE"]);
  }

  async function health(): Promise<Response> {
    const s: SchedulerStats = scheduler.stats();
    let storeInfo: Record<string, unknown>;
    try {
      storeInfo = await store.info();
    } catch (e) {
      storeInfo = { kind: store.kind, status: "unavailable", error: (e as Error).message };
    }
    return json({
      status: "ok",
      model: modelName,
      aliases: [...core.names].filter((n) => n !== modelName),
      identity: bankP ? (await bankP).identity : undefined,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      // batch: what runs now; queue: what waits for a place
      batch: s.running,
      prefilling: s.prefilling,
      queued: s.queued,
      maxBatch: s.maxBatch,
      queue: s.maxQueue,
      maxPrefillTokensPerStep: s.maxPrefillTokensPerStep,
      maxPromptTokens: core.maxPromptTokens,
      steps: s.steps,
      lastStep: { items: s.lastStepItems, ms: Math.round(s.lastStepMs * 100) / 100 },
      generatedTokens: s.generatedTokens,
      promptTokens: s.promptTokens,
      finished: s.finished,
      store: storeInfo,
      engine: model.info.engine,
      dtype: model.info.dtype,
      rssMiB: Math.round(Deno.memoryUsage().rss / 2 ** 20),
    });
  }

  function modelObject(id: string) {
    return { id, object: "model", created: core.created, owned_by: "rwkv-deno" };
  }

  async function route(req: Request, path: string): Promise<Response> {
    const only = (...methods: string[]) => {
      if (!methods.includes(req.method)) throw methodNotAllowed(req.method, path, methods);
    };
    if (path === "/" || path === "/index.html") {
      only("GET", "HEAD");
      return new Response(await page(), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (path === "/health") {
      only("GET", "HEAD");
      return await health();
    }
    if (!path.startsWith("/v1/")) {
      throw new HttpError(404, `no route ${req.method} ${path}`, undefined, null, "not_found");
    }
    if (options.apiKey !== undefined) {
      const auth = req.headers.get("authorization") ?? "";
      if (auth !== `Bearer ${options.apiKey}`) {
        throw new HttpError(
          401,
          "invalid or missing API key (Authorization: Bearer …)",
          "invalid_request_error",
          null,
          "invalid_api_key",
        );
      }
    }
    if (path === "/v1/models") {
      only("GET");
      return json({ object: "list", data: [...core.names].map(modelObject) });
    }
    const m = /^\/v1\/models\/(.+)$/.exec(path);
    if (m) {
      only("GET");
      const id = decodeURIComponent(m[1]);
      checkModel(core, id);
      return json(modelObject(id));
    }
    if (path === "/v1/completions" || path === "/v1/chat/completions") {
      only("POST");
      return await complete(req, path === "/v1/chat/completions");
    }
    if (path === "/v1/responses" || path.startsWith("/v1/responses/")) {
      return await handleResponses(core, req, path);
    }
    const st = /^\/v1\/states\/([^/]+)$/.exec(path);
    if (st) return await states(req, decodeURIComponent(st[1]));
    throw new HttpError(404, `no route ${req.method} ${path}`, undefined, null, "not_found");
  }

  function corsHeaders(req: Request): Record<string, string> {
    const origin = req.headers.get("origin");
    if (!origin || !(cors.has("*") || cors.has(origin))) return {};
    return {
      "access-control-allow-origin": cors.has("*") ? "*" : origin,
      "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
      "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
        "authorization, content-type",
      "access-control-max-age": "600",
      vary: "origin",
    };
  }

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
        res = await route(req, path);
      } catch (e) {
        if (e instanceof HttpError) res = errorResponse(e);
        else if (e instanceof RwkvError) res = errorResponse(new HttpError(400, e.message));
        else {
          console.error(e);
          res = errorResponse(new HttpError(500, "internal error", "server_error"));
        }
      }
    }
    for (const [k, v] of Object.entries(corsHeaders(req))) res.headers.set(k, v);
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
