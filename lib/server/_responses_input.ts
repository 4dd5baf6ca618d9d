/**
 * The Responses API's request fields that need more than a type check: `input` (messages,
 * function calls and their results) and the logprobs asked for.
 * @module
 */

import { type Body, field, HttpError, isInt, isStr, range } from "./_http.ts";
import { parseMessage } from "./_parse.ts";
import { MAX_TOP_LOGPROBS } from "./logprobs.ts";
import type { TemplateMessage } from "./template.ts";

/** `input` and `instructions` as template messages (message, function call and result items). */
export function parseInput(body: Body, instructions: string | undefined): TemplateMessage[] {
  const input = body.input;
  const msgs: TemplateMessage[] = [];
  if (instructions) msgs.push({ role: "system", content: instructions });
  if (typeof input === "string") msgs.push({ role: "user", content: input });
  else if (Array.isArray(input) && input.length > 0) {
    for (const [i, item] of input.entries()) {
      const param = `input[${i}]`;
      const it = item as Record<string, unknown>;
      const t = it?.type;
      if (t === undefined || t === "message") msgs.push(parseMessage(item, param));
      else if (t === "function_call") {
        for (const k of ["call_id", "name", "arguments"]) {
          if (!isStr(it[k])) {
            throw new HttpError(400, `${param}.${k} must be a string`, undefined, `${param}.${k}`);
          }
        }
        const call = { id: it.call_id as string, name: it.name as string };
        const last = msgs.at(-1);
        const entry = { ...call, arguments: it.arguments as string };
        // consecutive calls are one assistant turn
        if (last?.role === "assistant" && last.toolCalls && !last.content) {
          msgs[msgs.length - 1] = { ...last, toolCalls: [...last.toolCalls, entry] };
        } else msgs.push({ role: "assistant", content: "", toolCalls: [entry] });
      } else if (t === "function_call_output") {
        if (!isStr(it.call_id)) {
          throw new HttpError(
            400,
            `${param}.call_id must be the id of the call this is the result of`,
            undefined,
            `${param}.call_id`,
          );
        }
        const out = it.output;
        const text = isStr(out)
          ? out
          : Array.isArray(out) && out.every((p) => isStr(p?.text))
          ? out.map((p) => p.text).join("")
          : undefined;
        if (text === undefined) {
          throw new HttpError(
            400,
            `${param}.output must be a string or a list of text parts`,
            undefined,
            `${param}.output`,
          );
        }
        msgs.push({ role: "tool", content: text });
      } else {
        throw new HttpError(
          400,
          `${param}: items of type '${t}' are not supported (message, function_call, ` +
            "function_call_output)",
          "invalid_request_error",
          `${param}.type`,
        );
      }
    }
  } else {
    throw new HttpError(
      400,
      "'input' must be a string or a non-empty list of items",
      "invalid_request_error",
      "input",
    );
  }
  return msgs;
}

/** `include` and `top_logprobs`: how many alternatives to report (undefined: no logprobs). */
export function parseLogprobs(body: Body): number | undefined {
  const include = field(
    body,
    "include",
    (v): v is string[] => Array.isArray(v) && v.every(isStr),
    "a list of strings",
  ) ?? [];
  const top = field(body, "top_logprobs", isInt, "an integer");
  range("top_logprobs", top, 0, MAX_TOP_LOGPROBS);
  return include.includes("message.output_text.logprobs") ? top ?? 0 : undefined;
}
