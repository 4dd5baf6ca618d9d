/**
 * Structured-output request fields: chat completions' `response_format`, the Responses API's
 * `text.format`, and llama.cpp's `grammar` / `json_schema` on `/v1/completions`, read into one
 * {@link OutputFormat}; 400 in OpenAI's error shape naming the field when malformed.
 * @module
 */

import {
  compileGbnf,
  compileJsonSchema,
  Constraint,
  type Grammar,
  GrammarError,
  jsonObjectGrammar,
} from "../grammar/mod.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import { type Body, HttpError, isBool, isStr } from "./_http.ts";
import type { TokenConstraint } from "./scheduler.ts";
import { callsSchema, type ToolChoice, type ToolDef } from "./tools.ts";

/**
 * What a reply must be: any JSON object, a match of a JSON Schema, or a match of a GBNF
 * grammar; `param` is the request field it came from (named by errors).
 * @example
 * ```ts
 * const f: OutputFormat = { type: "json_schema", name: "point", schema: { type: "object" }, strict: true, param: "response_format" };
 * ```
 */
export type OutputFormat =
  | { readonly type: "json_object"; readonly param: string }
  | {
    readonly type: "json_schema";
    readonly name: string;
    readonly schema: Record<string, unknown>;
    readonly strict: boolean;
    readonly param: string;
  }
  | { readonly type: "grammar"; readonly grammar: string; readonly param: string };

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function bad(message: string, param: string): HttpError {
  return new HttpError(400, message, "invalid_request_error", param);
}

/** A `json_schema` format's fields (`at`: where they are, for errors). */
function schemaFormat(f: Record<string, unknown>, at: string, param: string): OutputFormat {
  if (!isStr(f.name) || !NAME.test(f.name)) {
    throw bad(`'${at}.name' must be letters, digits, _ or - (at most 64)`, `${at}.name`);
  }
  const schema = f.schema ?? {};
  if (!isObj(schema)) throw bad(`'${at}.schema' must be a JSON Schema object`, `${at}.schema`);
  if (f.strict !== undefined && f.strict !== null && !isBool(f.strict)) {
    throw bad(`'${at}.strict' must be a boolean`, `${at}.strict`);
  }
  return { type: "json_schema", name: f.name, schema, strict: f.strict === true, param };
}

/**
 * Chat completions' `response_format`: `{type: "text"}` (undefined), `{type: "json_object"}`
 * (llama.cpp's optional `schema` beside it is honoured), or `{type: "json_schema",
 * json_schema: {name, schema, strict}}`.
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const format = parseResponseFormat(body); // undefined: plain text
 * ```
 */
export function parseResponseFormat(body: Body): OutputFormat | undefined {
  const rf = body.response_format;
  const param = "response_format";
  if (rf === undefined || rf === null) return undefined;
  if (!isObj(rf)) throw bad("'response_format' must be an object", param);
  if (rf.type === "text") return undefined;
  if (rf.type === "json_object") {
    if (rf.schema === undefined || rf.schema === null) return { type: "json_object", param };
    if (!isObj(rf.schema)) throw bad("'response_format.schema' must be an object", param);
    return { type: "json_schema", name: "response", schema: rf.schema, strict: true, param };
  }
  if (rf.type === "json_schema") {
    if (!isObj(rf.json_schema)) {
      throw bad("'response_format.json_schema' must be an object", "response_format.json_schema");
    }
    return schemaFormat(rf.json_schema, "response_format.json_schema", "response_format");
  }
  throw bad(
    "'response_format.type' must be 'text', 'json_object' or 'json_schema'",
    "response_format.type",
  );
}

/**
 * The Responses API's `text.format`: `{type: "text"}`, `{type: "json_object"}` or
 * `{type: "json_schema", name, schema, strict}`.
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const format = parseTextFormat(body);
 * ```
 */
export function parseTextFormat(body: Body): OutputFormat | undefined {
  const text = body.text;
  if (text === undefined || text === null) return undefined;
  if (!isObj(text)) throw bad("'text' must be an object", "text");
  const f = text.format;
  if (f === undefined || f === null) return undefined;
  if (!isObj(f)) throw bad("'text.format' must be an object", "text.format");
  if (f.type === "text") return undefined;
  if (f.type === "json_object") return { type: "json_object", param: "text.format" };
  if (f.type === "json_schema") return schemaFormat(f, "text.format", "text.format");
  throw bad(
    "'text.format.type' must be 'text', 'json_object' or 'json_schema'",
    "text.format.type",
  );
}

/**
 * `/v1/completions`' llama.cpp extensions: `grammar` (GBNF text) or `json_schema` (an object),
 * at most one of them.
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const format = parseCompletionFormat(body);
 * ```
 */
export function parseCompletionFormat(body: Body): OutputFormat | undefined {
  const { grammar, json_schema: schema } = body;
  const has = (v: unknown) => v !== undefined && v !== null;
  if (has(grammar) && has(schema)) {
    throw bad("give either 'grammar' or 'json_schema', not both", "grammar");
  }
  if (has(grammar)) {
    if (!isStr(grammar) || !grammar.trim()) {
      throw bad("'grammar' must be a GBNF grammar (a non-empty string)", "grammar");
    }
    return { type: "grammar", grammar, param: "grammar" };
  }
  if (has(schema)) {
    if (!isObj(schema)) throw bad("'json_schema' must be a JSON Schema object", "json_schema");
    return { type: "json_schema", name: "json_schema", schema, strict: true, param: "json_schema" };
  }
  return undefined;
}

/**
 * A format's description for `text.format` / `response_format` echoes in responses.
 * @example
 * ```ts
 * declare const format: OutputFormat | undefined;
 * formatEcho(format); // { type: "json_schema", name, schema, strict }
 * ```
 */
export function formatEcho(f: OutputFormat | undefined): Record<string, unknown> {
  if (!f) return { type: "text" };
  if (f.type === "json_schema") {
    return { type: "json_schema", name: f.name, schema: f.schema, strict: f.strict };
  }
  return { type: f.type };
}

/**
 * The grammar of a format, compiled (and cached by its text); a schema or grammar the compiler
 * refuses is a 400 naming the field, with the compiler's message (which names the keyword's
 * JSON path or the GBNF line:column).
 * @example
 * ```ts
 * declare const body: Record<string, unknown>; // a request's parsed JSON
 * const grammar = formatGrammar(parseResponseFormat(body)!);
 * ```
 */
export function formatGrammar(f: OutputFormat): Grammar {
  // where the schema itself is: response_format.json_schema.schema, text.format.schema, or
  // completions' json_schema (the schema is the field)
  const where = f.type !== "json_schema" || f.param === "json_schema"
    ? f.param
    : f.param === "response_format"
    ? "response_format.json_schema.schema"
    : `${f.param}.schema`;
  return compiled(where, () => {
    if (f.type === "json_object") return jsonObjectGrammar();
    if (f.type === "json_schema") {
      return compileJsonSchema(f.schema);
    }
    const hit = gbnfCache.get(f.grammar);
    if (hit) return hit;
    const g = compileGbnf(f.grammar);
    if (gbnfCache.size >= 64) gbnfCache.delete(gbnfCache.keys().next().value!);
    gbnfCache.set(f.grammar, g);
    return g;
  });
}

const gbnfCache = new Map<string, Grammar>();

/** Runs a compile, turning the compiler's refusal into a 400 naming `param`. */
export function compiled(param: string, f: () => Grammar): Grammar {
  try {
    return f();
  } catch (e) {
    if (e instanceof GrammarError) {
      throw new HttpError(400, `${param}: ${e.message}`, "invalid_request_error", param);
    }
    throw e;
  }
}

/**
 * A maker of fresh constraints over `grammar` for `tokenizer` (its end token allowed where the
 * grammar is complete).
 * @example
 * ```ts
 * import type { Grammar } from "../grammar/grammar.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const grammar: Grammar, tokenizer: Tokenizer;
 * const make = constraintOf(grammar, tokenizer); const c = make();
 * ```
 */
export function constraintOf(grammar: Grammar, tokenizer: Tokenizer): () => TokenConstraint {
  const endToken = tokenizer.kind === "bytes" ? null : 0;
  return () => new Constraint(grammar, tokenizer, { endToken });
}

/**
 * The grammar of a reply's calls (see `callsSchema`); each function's parameter schema is
 * compiled alone first, so a bad one is a 400 naming its `tools[i]` field.
 * @example
 * ```ts
 * import type { ToolDef } from "./tools.ts";
 * declare const tools: ToolDef[];
 * const g = callsGrammar(tools, "auto", true, "chat");
 * ```
 */
export function callsGrammar(
  tools: readonly ToolDef[],
  choice: ToolChoice,
  parallel: boolean,
  api: "chat" | "responses",
): Grammar {
  tools.forEach((t, i) => {
    const param = api === "chat" ? `tools[${i}].function.parameters` : `tools[${i}].parameters`;
    compiled(param, () => compileJsonSchema(t.parameters));
  });
  return compiled("tools", () => compileJsonSchema(callsSchema(tools, choice, parallel)));
}
