/**
 * `POST /v1/completions` and `POST /v1/chat/completions`: parsing, the prefix cache (chat), one
 * run through the scheduler, and the answer whole or streamed as server-sent events.
 * @module
 */

import { CHAT_SAMPLING } from "../chat.ts";
import type { SamplerOptions } from "../sample.ts";
import {
  checkModel,
  checkPromptLength,
  type Core,
  namedState,
  type RunResult,
  startRun,
} from "./_core.ts";
import {
  type Body,
  field,
  HttpError,
  isBool,
  isInt,
  isStr,
  json,
  newId,
  range,
  readJson,
  sink,
  SSE_HEADERS,
  sseEvent,
} from "./_http.ts";
import { finishReason, parseMessages, parseSampling } from "./_parse.ts";
import type { PrefixCache } from "./_prefix_cache.ts";
import { chatChoice, chatDeltas, makeReply, type ReplyEvent } from "./_reply.ts";
import { parseCompletionFormat, parseResponseFormat } from "./formats.ts";
import { completionLogprobs, parseLogprobs, type TokenLogprob } from "./logprobs.ts";
import { encodeChat } from "./template.ts";
import { parseToolFields, toolsPrompt } from "./tools.ts";

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

/**
 * Answers a completion (`chat` false) or chat completion request.
 * @example
 * ```ts
 * import type { Core } from "./_core.ts";
 * import type { PrefixCache } from "./_prefix_cache.ts";
 * declare const core: Core, prefixes: PrefixCache, req: Request, path: string;
 * const res = await handleCompletions(core, prefixes, req, path === "/v1/chat/completions");
 * ```
 */
export async function handleCompletions(
  core: Core,
  prefixes: PrefixCache,
  req: Request,
  chat: boolean,
): Promise<Response> {
  const { model, tokenizer, template, modelName } = core;
  const body = await readJson(req, core.maxBody);
  checkModel(core, body.model);
  const p = parseCommon(body, core, chat);
  const logprobs = parseLogprobs(body, chat);
  const tools = chat ? parseToolFields(body, "chat") : undefined;
  const format = chat ? parseResponseFormat(body) : parseCompletionFormat(body);
  const reply = makeReply(core, format, tools, chat ? "chat" : "completions");
  const start = await namedState(core, body.state);
  let tokens: number[];
  let boundaries: number[] = [];
  if (chat) {
    const messages = parseMessages(body.messages);
    if (reply.offersTools) {
      messages.unshift({ role: "system", content: toolsPrompt(template, tools!.tools), raw: true });
    }
    ({ tokens, boundaries } = encodeChat(tokenizer, template, messages));
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
  const hit = caching ? await prefixes.lookup(tokens, boundaries) : undefined;
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
  let emit: (events: ReplyEvent[]) => void = () => {};
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
    onCheckpoint: (_pos, s) => saves.push(prefixes.save(tokens.slice(0, lastBoundary), s.clone())),
    signal: abort.signal,
    constraint: reply.constraint,
    stopsOff: reply.stopsOff,
    logprobs,
    onText: (piece, lps) => emit(reply.push(piece, lps)),
  });
  const finished = run.done.then(async (r) => {
    req.signal.removeEventListener("abort", onGone);
    if (caching && r.reason !== "abort") await prefixes.cacheReply(tokens, r, state, saves);
    await Promise.all(saves);
    return { r, ...reply.end(r) };
  }, (e) => {
    req.signal.removeEventListener("abort", onGone);
    throw e;
  });
  const lpOn = logprobs !== undefined;
  let offset = 0; // completions' text_offset of the next piece
  const completionLp = (lps: readonly TokenLogprob[], text: string) => {
    if (!lpOn) return null;
    const out = completionLogprobs(tokenizer, lps, offset);
    offset += text.length;
    return out;
  };

  if (!p.stream) {
    const { r, end } = await finished;
    if (r.reason === "abort") throw new HttpError(499, "client closed the request");
    const choice = chat ? chatChoice(tokenizer, end, lpOn) : {
      index: 0,
      text: end.content ?? "",
      logprobs: completionLp(end.logprobs, ""),
      finish_reason: finishReason(r),
    };
    return json({ ...base, choices: [choice], usage: usage(r) });
  }

  const chunk = (choice: Record<string, unknown>) => sseEvent({ ...base, choices: [choice] });
  const send = (out: ReturnType<typeof sink>, events: ReplyEvent[]) => {
    if (chat) {
      for (const c of chatDeltas(tokenizer, events, lpOn)) out.send(chunk(c));
      return;
    }
    for (const e of events) {
      if (e.kind !== "text") continue;
      const lp = completionLp(e.logprobs, e.text);
      out.send(chunk({ index: 0, text: e.text, logprobs: lp, finish_reason: null }));
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const out = sink(controller);
      if (chat) {
        out.send(chunk({
          index: 0,
          delta: { role: "assistant", content: "" },
          logprobs: null,
          finish_reason: null,
        }));
      }
      emit = (events) => send(out, events);
      finished.then(({ r, end, events }) => {
        if (r.reason === "abort") return;
        send(out, events);
        out.send(chunk(
          chat
            ? { index: 0, delta: {}, logprobs: null, finish_reason: end.finish }
            : { index: 0, text: "", logprobs: null, finish_reason: finishReason(r) },
        ));
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
