/**
 * The OpenAI Responses API, text subset: `POST /v1/responses` (`input` as a string or message
 * list, `instructions`, `previous_response_id`, `store`, `max_output_tokens`, `temperature`,
 * `top_p`, `stream` with the Responses event sequence), `GET /v1/responses/{id}`,
 * `GET /v1/responses/{id}/state` (its state in the envelope of `states.ts`) and
 * `DELETE /v1/responses/{id}`.
 *
 * A stored response keeps the conversation's state (prompt and reply, every token fed) in the
 * state store, so a follow-up with `previous_response_id` processes only its own new input, on
 * any replica sharing the store. Usage follows OpenAI: `input_tokens` counts the whole context,
 * `input_tokens_details.cached_tokens` the part taken from the stored state; the tokens actually
 * processed are the difference.
 * @module
 */

import { CHAT_SAMPLING } from "../chat.ts";
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
  field,
  HttpError,
  isBool,
  isInt,
  isStr,
  json,
  methodNotAllowed,
  newId,
  range,
  readJson,
  sink,
  SSE_HEADERS,
  sseEvent,
} from "./_http.ts";
import { parseSampling } from "./_parse.ts";
import { makeReply, type ReplyEnd, type ReplyEvent } from "./_reply.ts";
import { formatEcho, parseTextFormat } from "./formats.ts";
import { chatLogprob, type TokenLogprob } from "./logprobs.ts";
import { encodeChat } from "./template.ts";
import { parseToolFields, type ToolCall, toolsPrompt } from "./tools.ts";
import { parseInput, parseLogprobs } from "./_responses_input.ts";

/** A short key of a text (FNV-1a, 64 bits): which tools turn a stored state has seen. */
function textKey(text: string): string {
  let h = 0xcbf29ce4, l = 0x84222325;
  for (let i = 0; i < text.length; i++) {
    l ^= text.charCodeAt(i);
    // multiply the 64-bit (h, l) by the FNV prime 2^40 + 0x1b3, keeping 32 + 32 bits
    const lo = l * 0x1b3;
    const carry = Math.floor(lo / 2 ** 32);
    h = (h * 0x1b3 + (l << 8) + carry) >>> 0;
    l = lo >>> 0;
  }
  return h.toString(16).padStart(8, "0") + l.toString(16).padStart(8, "0");
}

const stateKey = (id: string) => `resp-state:${id}`;
const respKey = (id: string) => `resp:${id}`;

/**
 * Routes `/v1/responses` and `/v1/responses/{id}[/state]` (what `createApi` does for them).
 * @example
 * ```ts
 * import type { Core } from "./_core.ts";
 * declare const core: Core, req: Request;
 * const path = new URL(req.url).pathname;
 * if (path.startsWith("/v1/responses")) console.log(await handleResponses(core, req, path));
 * ```
 */
export async function handleResponses(core: Core, req: Request, path: string): Promise<Response> {
  if (path === "/v1/responses") {
    if (req.method !== "POST") throw methodNotAllowed(req.method, path, ["POST"]);
    return await create(core, req);
  }
  const m = /^\/v1\/responses\/([^/]+)(\/state)?$/.exec(path);
  if (!m) throw new HttpError(404, `no route ${req.method} ${path}`, undefined, null, "not_found");
  const id = decodeURIComponent(m[1]);
  const bank = await core.bank();
  const notFound = () =>
    new HttpError(404, `no response with id '${id}'`, "invalid_request_error", null, "not_found");
  if (m[2]) {
    if (req.method !== "GET") throw methodNotAllowed(req.method, path, ["GET"]);
    const bytes = await withStore(() => bank.store.get(stateKey(id)));
    if (!bytes) throw notFound();
    return new Response(bytes, {
      headers: { "content-type": "application/octet-stream", "x-rwkv-model": bank.identity },
    });
  }
  if (req.method === "GET") {
    const bytes = await withStore(() => bank.store.get(respKey(id)));
    if (!bytes) throw notFound();
    return new Response(bytes, { headers: { "content-type": "application/json" } });
  }
  if (req.method === "DELETE") {
    const had = await withStore(() => bank.store.delete(respKey(id)));
    await withStore(() => bank.store.delete(stateKey(id)));
    if (!had) throw notFound();
    return json({ id, object: "response", deleted: true });
  }
  throw methodNotAllowed(req.method, path, ["GET", "DELETE"]);
}

async function create(core: Core, req: Request): Promise<Response> {
  const body = await readJson(req, core.maxBody);
  checkModel(core, body.model);
  const instructions = field(body, "instructions", isStr, "a string");
  const prevId = field(body, "previous_response_id", isStr, "a string");
  const store = field(body, "store", isBool, "a boolean") ?? true;
  const stream = field(body, "stream", isBool, "a boolean") ?? false;
  const maxTokens = field(body, "max_output_tokens", isInt, "an integer") ?? core.defaultMaxTokens;
  range("max_output_tokens", maxTokens, 1, core.maxTokensLimit);
  const sampling = parseSampling(body, CHAT_SAMPLING);
  const logprobs = parseLogprobs(body);
  const format = parseTextFormat(body);
  const tools = parseToolFields(body, "responses");
  const reply = makeReply(core, format, tools, "responses");
  const messages = parseInput(body, instructions);
  // The functions are shown at the start of a conversation, and again in a follow-up only when
  // they differ from those its stored state has seen (their turn's key is kept with the state).
  const toolsTurn = reply.offersTools ? toolsPrompt(core.template, tools.tools) : undefined;
  const toolsKey = toolsTurn === undefined ? undefined : textKey(toolsTurn);
  const encode = (showTools: boolean) =>
    encodeChat(core.tokenizer, core.template, [
      ...(showTools ? [{ role: "system" as const, content: toolsTurn!, raw: true }] : []),
      ...messages,
    ]).tokens;
  let tokens = encode(toolsTurn !== undefined && prevId === undefined);
  if (tokens.length === 0) {
    throw new HttpError(400, "the input is empty", "invalid_request_error", "input");
  }
  checkPromptLength(core, tokens.length, "input");
  if (prevId !== undefined && body.state !== undefined) {
    throw new HttpError(
      400,
      "give either 'previous_response_id' or 'state', not both",
      "invalid_request_error",
      "state",
    );
  }

  const bank = await core.bank();
  let state = await namedState(core, body.state);
  let cached = 0;
  let shownTools = toolsKey; // the functions the state will have seen
  if (prevId !== undefined) {
    const got = await withStore(() => bank.load(stateKey(prevId)));
    if (!got) {
      throw new HttpError(
        404,
        `previous response '${prevId}' not found (never stored, deleted or expired)`,
        "invalid_request_error",
        "previous_response_id",
        "previous_response_not_found",
      );
    }
    state = got.state;
    cached = Number(got.meta.tokens ?? 0);
    const before = typeof got.meta.tools === "string" ? got.meta.tools : undefined;
    if (toolsKey !== undefined && toolsKey !== before) {
      tokens = encode(true);
      checkPromptLength(core, tokens.length, "input");
    } else shownTools = before;
  }
  state ??= core.model.createState();

  const id = newId("resp", "_");
  const msgId = newId("msg", "_");
  const createdAt = Math.floor(Date.now() / 1000);
  const toolsEcho = (body.tools as unknown[] | undefined) ?? [];
  const lpEntries = (lps: readonly TokenLogprob[]) =>
    lps.map((lp) => chatLogprob(core.tokenizer, lp));
  const textPart = (text: string, lps: readonly TokenLogprob[]) => ({
    type: "output_text",
    text,
    annotations: [],
    ...(logprobs !== undefined && { logprobs: lpEntries(lps) }),
  });
  const callItem = (c: ToolCall, status: string) => ({
    id: "fc_" + c.id.slice(5),
    type: "function_call",
    status,
    arguments: c.arguments,
    call_id: c.id,
    name: c.name,
  });
  const outputOf = (end: ReplyEnd) => [
    ...(end.content !== null
      ? [{
        id: msgId,
        type: "message",
        status: "completed",
        role: "assistant",
        content: [textPart(end.content, end.logprobs)],
      }]
      : []),
    // a call cut by the token limit is incomplete (its arguments may not parse)
    ...end.calls.map((c, i) =>
      callItem(
        c,
        end.finish === "length" && i === end.calls.length - 1 ? "incomplete" : "completed",
      )
    ),
  ];
  const responseObject = (status: string, end?: ReplyEnd, r?: RunResult) => ({
    id,
    object: "response",
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: instructions ?? null,
    max_output_tokens: maxTokens,
    model: core.modelName,
    output: end ? outputOf(end) : [],
    parallel_tool_calls: tools.parallel,
    previous_response_id: prevId ?? null,
    store,
    temperature: sampling.temperature ?? 1,
    top_p: sampling.topP ?? 1,
    text: { format: formatEcho(format) },
    tool_choice: typeof tools.choice === "object"
      ? { type: "function", name: tools.choice.name }
      : tools.choice,
    tools: toolsEcho,
    ...(logprobs !== undefined && { top_logprobs: logprobs }),
    truncation: "disabled",
    metadata: {},
    usage: r
      ? {
        input_tokens: cached + tokens.length,
        input_tokens_details: { cached_tokens: cached },
        output_tokens: r.generatedTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: cached + tokens.length + r.generatedTokens,
      }
      : null,
  });

  const abort = new AbortController();
  const onGone = () => abort.abort();
  req.signal.addEventListener("abort", onGone, { once: true });
  let emit: (events: ReplyEvent[]) => void = () => {};
  const run = startRun(core, {
    prompt: tokens,
    state,
    context: tokens,
    sampling,
    maxTokens,
    stops: core.stops,
    trimStart: true,
    feedLast: store,
    signal: abort.signal,
    constraint: reply.constraint,
    stopsOff: reply.stopsOff,
    logprobs,
    onText: (piece, lps) => emit(reply.push(piece, lps)),
  });
  const finished = run.done.then(async (r) => {
    if (r.reason === "abort") return { r, obj: undefined, events: [] };
    const { end, events } = reply.end(r);
    const obj = responseObject(r.reason === "length" ? "incomplete" : "completed", end, r);
    if (store) {
      await withStore(async () => {
        await bank.save(stateKey(id), state!, {
          tokens: cached + tokens.length + r.tokens.length,
          output_tokens: r.tokens,
          ...(shownTools !== undefined && { tools: shownTools }),
        });
        await bank.store.set(
          respKey(id),
          new TextEncoder().encode(JSON.stringify(obj)),
          bank.ttlSeconds,
        );
      });
    }
    return { r, obj, events };
  }).finally(() => req.signal.removeEventListener("abort", onGone));

  if (!stream) {
    const { obj } = await finished;
    if (!obj) throw new HttpError(499, "client closed the request");
    return json(obj);
  }

  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) =>
    sseEvent({ type, sequence_number: seq++, ...data }, type);
  const body$ = new ReadableStream<Uint8Array>({
    start(controller) {
      const out = sink(controller);
      const initial = responseObject("in_progress");
      out.send(ev("response.created", { response: initial }));
      out.send(ev("response.in_progress", { response: initial }));
      // output items open as the reply shows what it is: a message, then or instead calls
      let items = 0;
      let message: { index: number; text: string; lps: TokenLogprob[] } | undefined;
      const calls = new Map<number, { index: number; call: ToolCall }>();
      let openCall: { index: number; call: ToolCall } | undefined;
      const msgItem = { id: msgId, type: "message", status: "in_progress", role: "assistant" };
      const openMessage = () => {
        if (message) return message;
        message = { index: items++, text: "", lps: [] };
        out.send(ev("response.output_item.added", {
          output_index: message.index,
          item: { ...msgItem, content: [] },
        }));
        out.send(ev("response.content_part.added", {
          item_id: msgId,
          output_index: message.index,
          content_index: 0,
          part: textPart("", []),
        }));
        return message;
      };
      const closeMessage = () => {
        if (!message || message.index < 0) return;
        const where = { item_id: msgId, output_index: message.index, content_index: 0 };
        const part = textPart(message.text, message.lps);
        out.send(ev("response.output_text.done", {
          ...where,
          text: message.text,
          logprobs: lpEntries(message.lps),
        }));
        out.send(ev("response.content_part.done", { ...where, part }));
        out.send(ev("response.output_item.done", {
          output_index: message.index,
          item: { ...msgItem, status: "completed", content: [part] },
        }));
        message.index = -1; // closed
      };
      const closeCall = () => {
        if (!openCall) return;
        const { index, call } = openCall;
        out.send(ev("response.function_call_arguments.done", {
          item_id: callItem(call, "completed").id,
          output_index: index,
          arguments: call.arguments,
        }));
        out.send(ev("response.output_item.done", {
          output_index: index,
          item: callItem(call, "completed"),
        }));
        openCall = undefined;
      };
      const send = (events: ReplyEvent[]) => {
        for (const e of events) {
          if (e.kind === "text") {
            const m = openMessage();
            if (m.index < 0) continue; // text after calls: not shown
            m.text += e.text;
            m.lps.push(...e.logprobs);
            out.send(ev("response.output_text.delta", {
              item_id: msgId,
              output_index: m.index,
              content_index: 0,
              delta: e.text,
              logprobs: lpEntries(e.logprobs),
            }));
          } else if (e.event.kind === "start") {
            closeMessage();
            closeCall();
            const call = { id: e.event.id, name: e.event.name, arguments: "" };
            openCall = { index: items++, call };
            calls.set(e.event.index, openCall);
            out.send(ev("response.output_item.added", {
              output_index: openCall.index,
              item: callItem(call, "in_progress"),
            }));
          } else {
            const c = calls.get(e.event.index)!;
            c.call = { ...c.call, arguments: c.call.arguments + e.event.text };
            out.send(ev("response.function_call_arguments.delta", {
              item_id: callItem(c.call, "in_progress").id,
              output_index: c.index,
              delta: e.event.text,
            }));
          }
        }
      };
      if (!reply.offersTools) openMessage();
      emit = send;
      finished.then(({ obj, events }) => {
        if (!obj) return;
        send(events);
        if (openCall) {
          // the call as parsed at the end (its arguments trimmed of trailing whitespace)
          const final = obj.output.find((o) =>
            o.type === "function_call" &&
            (o as { call_id: string }).call_id === openCall!.call.id
          ) as
            | { arguments: string }
            | undefined;
          if (final) openCall.call = { ...openCall.call, arguments: final.arguments };
        }
        closeCall();
        if (!message && calls.size === 0) openMessage();
        closeMessage();
        out.send(ev(`response.${obj.status}`, { response: obj }));
        out.close();
      }).catch((e) => {
        // the reply could not be stored (store unavailable): say so in the stream, then end it
        const message = e instanceof HttpError ? e.message : "internal error";
        if (!(e instanceof HttpError)) console.error(e);
        out.send(ev("error", {
          code: e instanceof HttpError ? e.code : "server_error",
          message,
          param: null,
        }));
        out.send(ev("response.failed", {
          response: {
            ...responseObject("failed"),
            error: { code: "server_error", message },
          },
        }));
        out.close();
      });
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(body$, { headers: SSE_HEADERS });
}
