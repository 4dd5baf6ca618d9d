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
  type Body,
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
import { parseMessages, parseSampling } from "./_parse.ts";
import { encodeChat, type TemplateMessage } from "./template.ts";

const stateKey = (id: string) => `resp-state:${id}`;
const respKey = (id: string) => `resp:${id}`;

/**
 * Routes `/v1/responses` and `/v1/responses/{id}[/state]` (what `createApi` does for them).
 * @example
 * ```ts ignore
 * if (path.startsWith("/v1/responses")) return await handleResponses(core, req, path);
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

function parseInput(body: Body, instructions: string | undefined): TemplateMessage[] {
  const input = body.input;
  const msgs: TemplateMessage[] = [];
  if (instructions) msgs.push({ role: "system", content: instructions });
  if (typeof input === "string") msgs.push({ role: "user", content: input });
  else if (Array.isArray(input)) {
    // message items; `type` is optional ("message") in the API
    for (const [i, item] of input.entries()) {
      const t = (item as Record<string, unknown>)?.type;
      if (t !== undefined && t !== "message") {
        throw new HttpError(
          400,
          `input[${i}]: only message items are supported, not '${t}'`,
          "invalid_request_error",
          `input[${i}].type`,
        );
      }
    }
    msgs.push(...parseMessages(input, "input"));
  } else {
    throw new HttpError(
      400,
      "'input' must be a string or a list of messages",
      "invalid_request_error",
      "input",
    );
  }
  return msgs;
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
  const messages = parseInput(body, instructions);
  const { tokens } = encodeChat(core.tokenizer, core.template, messages);
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
  }
  state ??= core.model.createState();

  const id = newId("resp", "_");
  const msgId = newId("msg", "_");
  const createdAt = Math.floor(Date.now() / 1000);
  const responseObject = (
    status: string,
    text: string | undefined,
    r?: RunResult,
  ) => ({
    id,
    object: "response",
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: instructions ?? null,
    max_output_tokens: maxTokens,
    model: core.modelName,
    output: text === undefined ? [] : [{
      id: msgId,
      type: "message",
      status: status === "in_progress" ? "in_progress" : "completed",
      role: "assistant",
      content: [{ type: "output_text", text, annotations: [] }],
    }],
    parallel_tool_calls: false,
    previous_response_id: prevId ?? null,
    store,
    temperature: sampling.temperature ?? 1,
    top_p: sampling.topP ?? 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
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
  let emit: (piece: string) => void = () => {};
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
    onText: (piece) => emit(piece),
  });
  const finished = run.done.then(async (r) => {
    if (r.reason === "abort") return { r, obj: undefined };
    const obj = responseObject(r.reason === "length" ? "incomplete" : "completed", r.text, r);
    if (store) {
      await withStore(async () => {
        await bank.save(stateKey(id), state!, {
          tokens: cached + tokens.length + r.tokens.length,
          output_tokens: r.tokens,
        });
        await bank.store.set(
          respKey(id),
          new TextEncoder().encode(JSON.stringify(obj)),
          bank.ttlSeconds,
        );
      });
    }
    return { r, obj };
  }).finally(() => req.signal.removeEventListener("abort", onGone));

  if (!stream) {
    const { obj } = await finished;
    if (!obj) throw new HttpError(499, "client closed the request");
    return json(obj);
  }

  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) =>
    sseEvent({ type, sequence_number: seq++, ...data }, type);
  const where = { item_id: msgId, output_index: 0, content_index: 0 };
  const body$ = new ReadableStream<Uint8Array>({
    start(controller) {
      const out = sink(controller);
      const initial = responseObject("in_progress", undefined);
      out.send(ev("response.created", { response: initial }));
      out.send(ev("response.in_progress", { response: initial }));
      const item = { id: msgId, type: "message", status: "in_progress", role: "assistant" };
      out.send(ev("response.output_item.added", {
        output_index: 0,
        item: { ...item, content: [] },
      }));
      out.send(ev("response.content_part.added", {
        ...where,
        part: { type: "output_text", text: "", annotations: [] },
      }));
      emit = (delta) =>
        out.send(ev("response.output_text.delta", { ...where, delta, logprobs: [] }));
      finished.then(({ r, obj }) => {
        if (!obj) return;
        const part = { type: "output_text", text: r.text, annotations: [] };
        out.send(
          ev("response.output_text.done", { ...where, text: r.text, logprobs: [] }),
        );
        out.send(ev("response.content_part.done", { ...where, part }));
        out.send(ev("response.output_item.done", {
          output_index: 0,
          item: { ...item, status: "completed", content: [part] },
        }));
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
            ...responseObject("failed", undefined),
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
