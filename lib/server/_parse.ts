/**
 * Request fields shared by the endpoints: sampling, messages, finish reasons.
 * @module
 */

import type { SamplerOptions } from "../sample.ts";
import type { RunResult } from "./_core.ts";
import { type Body, field, HttpError, isInt, isNum, isStr, range } from "./_http.ts";
import type { TemplateMessage } from "./template.ts";
import type { ToolCall } from "./tools.ts";

/**
 * Sampling fields shared by the endpoints (`temperature`, `top_p`, penalties, `seed`, …), as
 * sampler options over `base`.
 */
export function parseSampling(body: Body, base: SamplerOptions): SamplerOptions {
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
  return {
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
}

/**
 * `messages` (or a Responses `input` list) as template messages; 400 naming the bad one. An
 * assistant message may carry `tool_calls` (its content then may be null); a `tool` message
 * needs the `tool_call_id` of a call.
 */
export function parseMessages(msgs: unknown, name = "messages"): TemplateMessage[] {
  if (!Array.isArray(msgs) || msgs.length === 0) {
    throw new HttpError(400, `'${name}' must be a non-empty array`, "invalid_request_error", name);
  }
  return msgs.map((m, i) => parseMessage(m, `${name}[${i}]`));
}

/** One message (`param`: where it is, for errors). */
export function parseMessage(m: unknown, param: string): TemplateMessage {
  if (typeof m !== "object" || m === null) {
    throw new HttpError(400, `${param} must be an object`, "invalid_request_error", param);
  }
  const { role, content, tool_calls: calls, tool_call_id: callId } = m as Record<
    string,
    unknown
  >;
  if (
    role !== "system" && role !== "user" && role !== "assistant" && role !== "developer" &&
    role !== "tool"
  ) {
    throw new HttpError(
      400,
      `${param}.role must be system, developer, user, assistant or tool`,
      "invalid_request_error",
      `${param}.role`,
    );
  }
  const toolCalls = role === "assistant" && calls !== undefined && calls !== null
    ? parseToolCalls(calls, `${param}.tool_calls`)
    : undefined;
  if (role === "tool" && !isStr(callId)) {
    throw new HttpError(
      400,
      `${param}.tool_call_id must be the id of the call this is the result of`,
      "invalid_request_error",
      `${param}.tool_call_id`,
    );
  }
  let text: string;
  if (typeof content === "string") text = content;
  else if ((content === null || content === undefined) && toolCalls?.length) text = "";
  else if (
    Array.isArray(content) &&
    content.every((p) =>
      typeof p === "object" && p !== null &&
      ["text", "input_text", "output_text"].includes(p.type) && isStr(p.text)
    )
  ) text = content.map((p) => p.text).join("");
  else {
    throw new HttpError(
      400,
      `${param}.content must be a string or a list of text parts`,
      "invalid_request_error",
      `${param}.content`,
    );
  }
  return {
    role: role === "developer" ? "system" : role,
    content: text,
    ...(toolCalls && { toolCalls }),
  };
}

/** An assistant message's `tool_calls` (chat completions' shape). */
function parseToolCalls(v: unknown, param: string): ToolCall[] {
  if (!Array.isArray(v)) {
    throw new HttpError(400, `${param} must be an array`, "invalid_request_error", param);
  }
  return v.map((c, j) => {
    const at = `${param}[${j}]`;
    const f = (c as { function?: Record<string, unknown> })?.function;
    const bad = (what: string, p: string) =>
      new HttpError(400, `${p} must be ${what}`, "invalid_request_error", p);
    if (typeof c !== "object" || c === null) throw bad("an object", at);
    if (!isStr((c as Record<string, unknown>).id)) throw bad("a string", `${at}.id`);
    if (typeof f !== "object" || f === null) throw bad("an object", `${at}.function`);
    if (!isStr(f.name)) throw bad("a string", `${at}.function.name`);
    if (!isStr(f.arguments)) throw bad("a JSON string", `${at}.function.arguments`);
    return { id: (c as { id: string }).id, name: f.name, arguments: f.arguments };
  });
}

/** OpenAI's `finish_reason` of a run. */
export function finishReason(r: RunResult): "stop" | "length" {
  return r.reason === "length" ? "length" : "stop";
}
