/**
 * OpenAI-compatible HTTP API over one model: `GET /v1/models`, `POST /v1/completions`,
 * `POST /v1/chat/completions` (streamed as server-sent events or whole), `GET /health`, and a
 * small chat page at `/`. Each request gets its own fresh state; chat messages become the
 * `User:`/`Assistant:` transcript of {@link buildChatPrompt}.
 * @module
 */

import { buildChatPrompt, CHAT_SAMPLING, type ChatMessage } from "../chat.ts";
import { RwkvError } from "../errors.ts";
import { generate, type GenerateOptions, type GenerateStats } from "../generate.ts";
import type { Model } from "../model/model.ts";
import type { SamplerOptions } from "../sample.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import { QueueFullError, serialized, Slots } from "./queue.ts";

/**
 * Options of {@link createApi}.
 * @example
 * ```ts ignore
 * const api = createApi({ model, tokenizer, modelName: "rwkv-7-0.1b", concurrency: 1, queue: 8 });
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, api.handler);
 * ```
 */
export interface ApiOptions {
  model: Model;
  tokenizer: Tokenizer;
  /** The id shown by `/v1/models` (default: the file name of the model). */
  modelName?: string;
  /** Generations running at once (default 1); their forward passes interleave. */
  concurrency?: number;
  /** Requests allowed to wait for a slot (default 16); beyond, 429. */
  queue?: number;
  /** When set, `/v1/*` needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); beyond, 413. */
  maxBodyBytes?: number;
  /** `max_tokens` when a request gives none (default 256). */
  defaultMaxTokens?: number;
  /** Largest `max_tokens` accepted (default 4096). */
  maxTokensLimit?: number;
}

/**
 * The API: a `Deno.serve` handler plus live counters.
 * @example
 * ```ts ignore
 * const api = createApi({ model, tokenizer });
 * console.log(api.slots.active, api.slots.queued);
 * ```
 */
export interface Api {
  handler: (req: Request) => Promise<Response>;
  readonly slots: Slots;
  readonly modelName: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** An OpenAI-style error body. */
function errorResponse(e: HttpError): Response {
  const headers: Record<string, string> = {};
  if (e.status === 429 || e.status === 503) headers["retry-after"] = "1";
  if (e.status === 401) headers["www-authenticate"] = "Bearer";
  return json(
    { error: { message: e.message, type: e.type, param: e.param, code: e.code } },
    e.status,
    headers,
  );
}

async function readBody(req: Request, max: number): Promise<unknown> {
  const tooLarge = () =>
    new HttpError(
      413,
      `request body exceeds ${max} bytes`,
      "invalid_request_error",
      null,
      "body_too_large",
    );
  const len = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(len) && len > max) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const all = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(all));
  } catch (e) {
    throw new HttpError(400, `the body is not valid JSON (${(e as Error).message})`);
  }
}

type Body = Record<string, unknown>;

function field<T>(
  body: Body,
  name: string,
  check: (v: unknown) => v is T,
  what: string,
): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) {
    throw new HttpError(400, `'${name}' must be ${what}`, "invalid_request_error", name);
  }
  return v;
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isStr = (v: unknown): v is string => typeof v === "string";
const isStops = (v: unknown): v is string | string[] =>
  typeof v === "string" || (Array.isArray(v) && v.length <= 4 && v.every(isStr));

function range(name: string, v: number | undefined, lo: number, hi: number): void {
  if (v !== undefined && !(v >= lo && v <= hi)) {
    throw new HttpError(
      400,
      `'${name}' must be between ${lo} and ${hi}`,
      "invalid_request_error",
      name,
    );
  }
}

interface Parsed {
  stream: boolean;
  maxTokens: number;
  sampling: SamplerOptions;
  stop: string[];
}

function parseCommon(
  body: Body,
  opts: Required<Pick<ApiOptions, "defaultMaxTokens" | "maxTokensLimit">>,
  chat: boolean,
): Parsed {
  const maxTokens = field(body, "max_tokens", isInt, "an integer") ??
    field(body, "max_completion_tokens", isInt, "an integer") ?? opts.defaultMaxTokens;
  range("max_tokens", maxTokens, 1, opts.maxTokensLimit);
  const n = field(body, "n", isInt, "an integer");
  if (n !== undefined && n !== 1) {
    throw new HttpError(400, "only n = 1 is supported", "invalid_request_error", "n");
  }
  const temperature = field(body, "temperature", isNum, "a number");
  range("temperature", temperature, 0, 5);
  const topP = field(body, "top_p", isNum, "a number");
  range("top_p", topP, 0, 1);
  const topK = field(body, "top_k", isInt, "an integer");
  range("top_k", topK, 0, 1e9);
  const minP = field(body, "min_p", isNum, "a number");
  range("min_p", minP, 0, 1);
  const presence = field(body, "presence_penalty", isNum, "a number");
  range("presence_penalty", presence, -2, 2);
  const frequency = field(body, "frequency_penalty", isNum, "a number");
  range("frequency_penalty", frequency, -2, 2);
  const repetition = field(body, "repetition_penalty", isNum, "a number");
  range("repetition_penalty", repetition, 0.01, 10);
  const seed = field(body, "seed", isInt, "an integer");
  const bias = field(
    body,
    "logit_bias",
    (v): v is Record<string, number> =>
      typeof v === "object" && v !== null && !Array.isArray(v) &&
      Object.entries(v).every(([k, x]) => /^\d+$/.test(k) && isNum(x)),
    "an object of token id → number",
  );
  const stop = field(body, "stop", isStops, "a string or up to 4 strings");
  const base: SamplerOptions = chat ? CHAT_SAMPLING : {};
  const sampling: SamplerOptions = {
    ...base,
    ...(temperature !== undefined && { temperature }),
    ...(topP !== undefined && { topP: topP === 0 ? 1e-9 : topP }),
    ...(topK !== undefined && { topK }),
    ...(minP !== undefined && { minP }),
    ...(presence !== undefined && { presencePenalty: presence }),
    ...(frequency !== undefined && { frequencyPenalty: frequency }),
    ...(repetition !== undefined && { repetitionPenalty: repetition }),
    ...(seed !== undefined && { seed }),
    ...(bias && {
      logitBias: Object.fromEntries(Object.entries(bias).map(([k, x]) => [Number(k), x])),
    }),
  };
  return {
    stream: field(body, "stream", isBool, "a boolean") ?? false,
    maxTokens,
    sampling,
    stop: (typeof stop === "string" ? [stop] : stop ?? []).filter((s) => s.length > 0),
  };
}

function parseMessages(body: Body): ChatMessage[] {
  const msgs = body.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) {
    throw new HttpError(
      400,
      "'messages' must be a non-empty array",
      "invalid_request_error",
      "messages",
    );
  }
  return msgs.map((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== "object" || m === null) {
      throw new HttpError(400, `${param} must be an object`, "invalid_request_error", param);
    }
    const { role, content } = m as Record<string, unknown>;
    if (role !== "system" && role !== "user" && role !== "assistant" && role !== "developer") {
      throw new HttpError(
        400,
        `${param}.role must be system, user or assistant`,
        "invalid_request_error",
        `${param}.role`,
      );
    }
    let text: string;
    if (typeof content === "string") text = content;
    else if (
      Array.isArray(content) &&
      content.every((p) =>
        typeof p === "object" && p !== null && p.type === "text" && isStr(p.text)
      )
    ) text = content.map((p) => p.text).join("");
    else {
      throw new HttpError(
        400,
        `${param}.content must be a string`,
        "invalid_request_error",
        `${param}.content`,
      );
    }
    return { role: role === "developer" ? "system" : role, content: text };
  });
}

let counter = 0;
function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${(counter++).toString(36)}`;
}

const FINISH: Record<GenerateStats["stopReason"], string> = {
  length: "length",
  stop: "stop",
  "end-of-text": "stop",
  abort: "stop",
};

let pageCache: string | undefined;
async function page(): Promise<string> {
  if (pageCache === undefined) {
    const res = await fetch(new URL("./static/index.html", import.meta.url));
    if (!res.ok) throw new Error(`chat page: HTTP ${res.status}`);
    pageCache = await res.text();
  }
  return pageCache;
}

/**
 * Creates the API handler for one model.
 * @example
 * ```ts ignore
 * const api = createApi({ model, tokenizer, concurrency: 2, queue: 16, apiKey: "secret" });
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, api.handler);
 * ```
 */
export function createApi(options: ApiOptions): Api {
  const model = serialized(options.model);
  const tokenizer = options.tokenizer;
  const slots = new Slots(options.concurrency ?? 1, options.queue ?? 16);
  const modelName = options.modelName ??
    (options.model.info.path.split(/[\\/]/).pop() ?? "rwkv").replace(
      /\.(pth|safetensors|bin)$/,
      "",
    );
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const limits = {
    defaultMaxTokens: options.defaultMaxTokens ?? 256,
    maxTokensLimit: options.maxTokensLimit ?? 4096,
  };
  const created = Math.floor(Date.now() / 1000);

  async function complete(req: Request, chat: boolean): Promise<Response> {
    const raw = await readBody(req, maxBody);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new HttpError(400, "the body must be a JSON object");
    }
    const body = raw as Body;
    const p = parseCommon(body, limits, chat);
    let prompt: string;
    if (chat) {
      prompt = buildChatPrompt(parseMessages(body));
    } else {
      const pr = body.prompt;
      if (typeof pr === "string") prompt = pr;
      else if (Array.isArray(pr) && pr.length === 1 && isStr(pr[0])) prompt = pr[0];
      else {
        throw new HttpError(400, "'prompt' must be a string", "invalid_request_error", "prompt");
      }
    }
    const ids = tokenizer.encode(prompt);
    if (ids.length === 0) {
      throw new HttpError(
        400,
        "the prompt is empty",
        "invalid_request_error",
        chat ? "messages" : "prompt",
      );
    }
    const stops = chat ? ["\n\n", "\nUser:", ...p.stop] : p.stop;

    // Wait for a slot; a client that leaves while waiting is dropped from the line.
    let release: () => void;
    try {
      release = await slots.acquire(req.signal);
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new HttpError(429, e.message, "rate_limit_exceeded", null, "queue_full");
      }
      throw new HttpError(499, "client closed the request");
    }
    const abort = new AbortController();
    const onReqAbort = () => abort.abort();
    req.signal.addEventListener("abort", onReqAbort, { once: true });
    const done = () => {
      req.signal.removeEventListener("abort", onReqAbort);
      release();
    };
    const id = newId(chat ? "chatcmpl" : "cmpl");
    let stats: GenerateStats | undefined;
    const genOpts: GenerateOptions = {
      ...p.sampling,
      maxTokens: p.maxTokens,
      stop: stops,
      signal: abort.signal,
      onStats: (s) => stats = s,
    };
    const pieces = (async function* () {
      let first = chat; // chat replies start with the space after "Assistant:"
      for await (let piece of generate(model, tokenizer, ids, genOpts)) {
        if (first) {
          piece = piece.replace(/^\s+/, "");
          if (!piece) continue;
          first = false;
        }
        yield piece;
      }
    })();
    const usage = () => ({
      prompt_tokens: stats?.promptTokens ?? ids.length,
      completion_tokens: stats?.generatedTokens ?? 0,
      total_tokens: (stats?.promptTokens ?? ids.length) + (stats?.generatedTokens ?? 0),
    });
    const base = () => ({
      id,
      object: chat ? (p.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: modelName,
    });

    if (!p.stream) {
      let text = "";
      try {
        for await (const piece of pieces) text += piece;
      } finally {
        done();
      }
      const finish = FINISH[stats?.stopReason ?? "stop"];
      const choice = chat
        ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish }
        : { index: 0, text, logprobs: null, finish_reason: finish };
      return json({ ...base(), choices: [choice], usage: usage() });
    }

    const enc = new TextEncoder();
    const sse = (o: unknown) => enc.encode(`data: ${JSON.stringify(o)}\n\n`);
    const chunk = (content: string | undefined, finish: string | null, role = false) =>
      chat
        ? {
          ...base(),
          choices: [{
            index: 0,
            delta: finish !== null ? {} : { ...(role && { role: "assistant" }), content },
            finish_reason: finish,
          }],
        }
        : {
          ...base(),
          choices: [{ index: 0, text: content ?? "", logprobs: null, finish_reason: finish }],
        };
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        done();
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (chat) controller.enqueue(sse(chunk("", null, true)));
      },
      async pull(controller) {
        try {
          const r = await pieces.next();
          if (abort.signal.aborted) {
            finish();
            controller.close();
            return;
          }
          if (!r.done) {
            controller.enqueue(sse(chunk(r.value, null)));
            return;
          }
          const last = chunk(chat ? undefined : "", FINISH[stats?.stopReason ?? "stop"]);
          controller.enqueue(sse({ ...last, usage: usage() }));
          controller.enqueue(enc.encode("data: [DONE]\n\n"));
          finish();
          controller.close();
        } catch (e) {
          finish();
          controller.error(e);
        }
      },
      cancel() {
        // the client went away: stop generating and free the slot
        abort.abort();
        pieces.return(undefined as never).catch(() => {}).finally(finish);
      },
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  async function route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path === "/" || path === "/index.html") {
      if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "use GET");
      return new Response(await page(), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (path === "/health") {
      return json({
        status: "ok",
        model: modelName,
        active: slots.active,
        queued: slots.queued,
        concurrency: slots.concurrency,
        queue: slots.queueLength,
      });
    }
    if (!path.startsWith("/v1/")) {
      throw new HttpError(
        404,
        `no route ${req.method} ${path}`,
        "invalid_request_error",
        null,
        "not_found",
      );
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
      if (req.method !== "GET") throw new HttpError(405, "use GET");
      return json({
        object: "list",
        data: [{ id: modelName, object: "model", created, owned_by: "rwkv-deno" }],
      });
    }
    if (path === "/v1/completions" || path === "/v1/chat/completions") {
      if (req.method !== "POST") throw new HttpError(405, "use POST");
      return await complete(req, path === "/v1/chat/completions");
    }
    throw new HttpError(
      404,
      `no route ${req.method} ${path}`,
      "invalid_request_error",
      null,
      "not_found",
    );
  }

  async function handler(req: Request): Promise<Response> {
    try {
      return await route(req);
    } catch (e) {
      if (e instanceof HttpError) return errorResponse(e);
      if (e instanceof RwkvError) return errorResponse(new HttpError(400, e.message));
      console.error(e);
      return errorResponse(new HttpError(500, "internal error", "server_error"));
    }
  }

  return { handler, slots, modelName };
}
