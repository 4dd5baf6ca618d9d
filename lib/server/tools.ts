/**
 * Tool (function) calling for the server: the request fields (`tools`, `tool_choice`,
 * `parallel_tool_calls`, tool messages), the prompt that shows the model its functions, the
 * constraint that makes a call's arguments match the function's parameter schema, and the
 * parser that turns the reply back into OpenAI's `tool_calls` while it streams.
 *
 * The call format (RWKV models have no standard one; see the README's serving section): the
 * functions are listed in a system turn, and a reply that calls functions is the opening tag
 * `<tool_call>` followed by one JSON array of calls, `[{"name": …, "arguments": {…}}, …]`.
 * Results come back as `Tool:` turns. Every piece is a field of the chat template, so
 * `--template` can change them.
 * @module
 */

import { type Body, HttpError, isBool, isStr } from "./_http.ts";
import type { ChatTemplate } from "./_chat_template.ts";

/**
 * A function the model may call.
 * @example
 * ```ts
 * const t: ToolDef = { name: "get_weather", description: "Weather now", parameters: { type: "object" } };
 * ```
 */
export interface ToolDef {
  /** Its name (letters, digits, `_`, `-`; at most 64). */
  readonly name: string;
  /** What it does, for the model. */
  readonly description?: string;
  /** A JSON Schema of its arguments (an object schema). */
  readonly parameters: Record<string, unknown>;
}

/**
 * How the model may use the tools: `none`, `auto` (it decides), `required` (at least one call),
 * or one named function.
 * @example
 * ```ts
 * const choice: ToolChoice = { name: "get_weather" };
 * ```
 */
export type ToolChoice = "none" | "auto" | "required" | { readonly name: string };

/**
 * A call the model made.
 * @example
 * ```ts
 * const c: ToolCall = { id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' };
 * ```
 */
export interface ToolCall {
  /** The call's id (`call_…`), which its result refers to. */
  readonly id: string;
  /** The function's name. */
  readonly name: string;
  /** The arguments as JSON text. */
  readonly arguments: string;
}

/**
 * The template fields of the call format, and their defaults.
 * @example
 * ```ts
 * import { WORLD_TEMPLATE } from "./template.ts";
 * const template = { ...WORLD_TEMPLATE, tool: "Observation: {content}\n\n" }; // others default
 * console.log(TOOL_TEMPLATE.toolCall); // "<tool_call>"
 * ```
 */
export const TOOL_TEMPLATE = {
  /**
   * What the system turn listing the functions says (written with the template's `system`
   * pattern); `{tools}`: one JSON line per function, `{toolCall}`: the call tag.
   */
  tools: "You can call these functions. To call them, reply with {toolCall} and then a JSON " +
    'list of calls, [{"name": "FUNCTION", "arguments": {...}}]. Functions:\n{tools}',
  /** A function's result, sent back as a turn; `{content}`: the result. */
  tool: "Tool: {content}\n\n",
  /** What opens a reply's calls (a JSON array of calls follows it). */
  toolCall: "<tool_call>",
} as const;

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function bad(message: string, param: string): HttpError {
  return new HttpError(400, message, "invalid_request_error", param);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The `tools` field: chat completions' `{type: "function", function: {name, …}}` or the
 * Responses API's flat `{type: "function", name, …}`; 400 naming the bad entry.
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const tools = parseTools(body.tools, "responses");
 * ```
 */
export function parseTools(v: unknown, api: "chat" | "responses"): ToolDef[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad("'tools' must be an array of function tools", "tools");
  const seen = new Set<string>();
  return v.map((t, i) => {
    const param = `tools[${i}]`;
    if (!isObj(t) || t.type !== "function") {
      throw bad(`${param} must be a function tool ({"type": "function", …})`, `${param}.type`);
    }
    const f = api === "chat" ? t.function : t;
    const at = api === "chat" ? `${param}.function` : param;
    if (!isObj(f)) throw bad(`${at} must be an object`, at);
    if (!isStr(f.name) || !NAME.test(f.name)) {
      throw bad(`${at}.name must be letters, digits, _ or - (at most 64)`, `${at}.name`);
    }
    if (seen.has(f.name)) throw bad(`${at}.name '${f.name}' is given twice`, `${at}.name`);
    seen.add(f.name);
    if (f.description !== undefined && f.description !== null && !isStr(f.description)) {
      throw bad(`${at}.description must be a string`, `${at}.description`);
    }
    const p = f.parameters ?? { type: "object", properties: {} };
    if (!isObj(p)) throw bad(`${at}.parameters must be a JSON Schema object`, `${at}.parameters`);
    if (f.strict !== undefined && f.strict !== null && !isBool(f.strict)) {
      throw bad(`${at}.strict must be a boolean`, `${at}.strict`);
    }
    return {
      name: f.name,
      ...(isStr(f.description) && { description: f.description }),
      parameters: p,
    };
  });
}

/**
 * The `tool_choice` field (default `auto` with tools, `none` without); a named function must be
 * one of `tools` (400 `tool_choice` otherwise).
 * @example
 * ```ts
 * declare const tools: ToolDef[];
 * parseToolChoice({ type: "function", function: { name: "f" } }, tools, "chat"); // { name: "f" }
 * ```
 */
export function parseToolChoice(
  v: unknown,
  tools: readonly ToolDef[],
  api: "chat" | "responses",
): ToolChoice {
  if (v === undefined || v === null) return tools.length ? "auto" : "none";
  let choice: ToolChoice;
  if (v === "none" || v === "auto" || v === "required") choice = v;
  else if (isObj(v) && v.type === "function") {
    const name = api === "chat" && isObj(v.function) ? v.function.name : v.name;
    if (!isStr(name)) {
      const at = api === "chat" ? "tool_choice.function.name" : "tool_choice.name";
      throw bad(`'${at}' must be a string`, at);
    }
    choice = { name };
  } else {
    throw bad(
      "'tool_choice' must be 'none', 'auto', 'required' or a function to call",
      "tool_choice",
    );
  }
  if (typeof choice === "object" && !tools.some((t) => t.name === choice.name)) {
    throw bad(`'tool_choice' names '${choice.name}', which is not in 'tools'`, "tool_choice");
  }
  if (choice === "required" && tools.length === 0) {
    throw bad("'tool_choice' is 'required' but no 'tools' are given", "tool_choice");
  }
  return choice;
}

/**
 * `tools`, `tool_choice` and `parallel_tool_calls` of a request body, validated.
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const spec = parseToolFields(body, "chat"); // undefined: no calls possible
 * ```
 */
export function parseToolFields(
  body: Body,
  api: "chat" | "responses",
): { tools: ToolDef[]; choice: ToolChoice; parallel: boolean } {
  const tools = parseTools(body.tools, api);
  const choice = parseToolChoice(body.tool_choice, tools, api);
  const parallel = body.parallel_tool_calls ?? true;
  if (!isBool(parallel)) {
    throw bad("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
  }
  return { tools, choice, parallel };
}

/**
 * The JSON Schema a reply's calls must match: a list of `{name, arguments}` objects, one
 * alternative per function allowed, each `arguments` the function's parameter schema. The
 * parameter schemas' `$defs`/`definitions` move to the root under the function's name, their
 * `$ref`s rewritten to match.
 * @example
 * ```ts
 * declare const tools: ToolDef[];
 * const schema = callsSchema(tools, "required", true);
 * ```
 */
export function callsSchema(
  tools: readonly ToolDef[],
  choice: ToolChoice,
  parallel: boolean,
): Record<string, unknown> {
  const allowed = typeof choice === "object" ? tools.filter((t) => t.name === choice.name) : tools;
  const defs: Record<string, unknown> = {};
  const items = allowed.map((t) => {
    const prefix = `${t.name}__`;
    const { $defs, definitions, ...params } = t.parameters as Record<string, unknown>;
    const rewrite = (x: unknown): unknown => {
      if (Array.isArray(x)) return x.map(rewrite);
      if (!isObj(x)) return x;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(x)) {
        if (k === "$ref" && isStr(v)) out[k] = rewriteRef(v, prefix, t.name);
        else out[k] = rewrite(v);
      }
      return out;
    };
    for (const group of [$defs, definitions]) {
      if (!isObj(group)) continue;
      for (const [k, v] of Object.entries(group)) defs[prefix + k] = rewrite(v);
    }
    const args = rewrite(params);
    defs[t.name] = args; // the root ("#") of its own schema
    return {
      type: "object",
      properties: { name: { const: t.name }, arguments: args },
      required: ["name", "arguments"],
      additionalProperties: false,
    };
  });
  return {
    type: "array",
    items: items.length === 1 ? items[0] : { anyOf: items },
    minItems: 1,
    ...(!parallel && { maxItems: 1 }),
    ...(Object.keys(defs).length && { $defs: defs }),
  };
}

function rewriteRef(ref: string, prefix: string, root: string): string {
  if (ref === "#") return `#/$defs/${root}`;
  const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
  if (m) return `#/$defs/${prefix}${m[2]}`;
  return ref; // a reference elsewhere is the grammar compiler's to refuse, naming it
}

/**
 * The system turn showing `tools` to the model: `template.tools` (its `{tools}` and `{toolCall}`
 * filled in) in the template's `system` pattern, as is (not normalized: the list keeps its lines).
 * @example
 * ```ts
 * import { WORLD_TEMPLATE } from "./template.ts";
 * declare const tools: ToolDef[];
 * const text = toolsPrompt(WORLD_TEMPLATE, tools);
 * ```
 */
export function toolsPrompt(template: ChatTemplate, tools: readonly ToolDef[]): string {
  const lines = tools.map((t) =>
    JSON.stringify({
      name: t.name,
      ...(t.description && { description: t.description }),
      parameters: t.parameters,
    })
  );
  const text = (template.tools ?? TOOL_TEMPLATE.tools)
    .replaceAll("{toolCall}", template.toolCall ?? TOOL_TEMPLATE.toolCall)
    .replaceAll("{tools}", lines.join("\n"));
  return template.system.replaceAll("{content}", text);
}

/**
 * The text of an assistant turn's calls, as the model writes them.
 * @example
 * ```ts
 * import { WORLD_TEMPLATE } from "./template.ts";
 * callsText(WORLD_TEMPLATE, [{ id: "c", name: "f", arguments: "{}" }]); // '<tool_call>[{"name":"f","arguments":{}}]'
 * ```
 */
export function callsText(template: ChatTemplate, calls: readonly ToolCall[]): string {
  const list = calls.map((c) => {
    let args: unknown;
    try {
      args = JSON.parse(c.arguments);
    } catch {
      args = c.arguments; // not JSON: shown as the string it is
    }
    return { name: c.name, arguments: args };
  });
  return (template.toolCall ?? TOOL_TEMPLATE.toolCall) + JSON.stringify(list);
}

/**
 * A fresh call id.
 * @example
 * ```ts
 * callId(); // "call_3f9a…"
 * ```
 */
export function callId(): string {
  const r = crypto.getRandomValues(new Uint8Array(12));
  return "call_" + Array.from(r, (b) => b.toString(16).padStart(2, "0")).join("");
}
