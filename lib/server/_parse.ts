/**
 * Request fields shared by the endpoints: sampling, messages, finish reasons.
 * @module
 */

import type { SamplerOptions } from "../sample.ts";
import type { RunResult } from "./_core.ts";
import { type Body, field, HttpError, isInt, isNum, isStr, range } from "./_http.ts";
import type { TemplateMessage } from "./template.ts";

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

/** `messages` (or a Responses `input` list) as template messages; 400 naming the bad one. */
export function parseMessages(msgs: unknown, name = "messages"): TemplateMessage[] {
  if (!Array.isArray(msgs) || msgs.length === 0) {
    throw new HttpError(400, `'${name}' must be a non-empty array`, "invalid_request_error", name);
  }
  return msgs.map((m, i) => {
    const param = `${name}[${i}]`;
    if (typeof m !== "object" || m === null) {
      throw new HttpError(400, `${param} must be an object`, "invalid_request_error", param);
    }
    const { role, content } = m as Record<string, unknown>;
    if (role !== "system" && role !== "user" && role !== "assistant" && role !== "developer") {
      throw new HttpError(
        400,
        `${param}.role must be system, developer, user or assistant`,
        "invalid_request_error",
        `${param}.role`,
      );
    }
    let text: string;
    if (typeof content === "string") text = content;
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
    return { role: role === "developer" ? "system" : role, content: text };
  });
}

/** OpenAI's `finish_reason` of a run. */
export function finishReason(r: RunResult): "stop" | "length" {
  return r.reason === "length" ? "length" : "stop";
}
