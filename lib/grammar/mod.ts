/**
 * Constrained decoding: outputs that match a grammar, a JSON Schema or any JSON object.
 *
 * A {@link Grammar} is compiled once (from llama.cpp's GBNF format with {@link compileGbnf},
 * from a JSON Schema with {@link compileJsonSchema}, or {@link jsonObjectGrammar} for JSON
 * mode) and shared; each sequence follows it with a {@link Constraint} over its tokenizer,
 * which masks the logits of tokens that cannot continue, advances by the chosen token and
 * reports forced runs and whether the output may or must end. `generate()` takes
 * `{ jsonSchema }` or `{ grammar }` and does all of this itself.
 *
 * The matcher works on UTF-8 bytes (the World tokenizer's tokens are byte strings, and so are
 * byte-level Hugging Face ones); its states are memoized as a lazily built automaton, and the
 * allowed tokens of a state as a bitset, so a mask for a state seen before costs one pass
 * over the logits.
 *
 * @example
 * ```ts
 * import { compileJsonSchema, Constraint } from "./mod.ts";
 * import { ByteTokenizer } from "../tokenizer/bytes.ts";
 *
 * const grammar = compileJsonSchema({
 *   type: "object",
 *   properties: { ok: { type: "boolean" } },
 *   required: ["ok"],
 *   additionalProperties: false,
 * });
 * const c = new Constraint(grammar, new ByteTokenizer());
 * c.accept(123); // "{"
 * c.accept(34); // '"'
 * console.log(String.fromCharCode(...c.forced())); // 'ok"': the only key
 * ```
 * @module
 */

import { Grammar, GrammarCache } from "./grammar.ts";
import { jsonSchemaToGbnf } from "./json_schema.ts";

export { GrammarError } from "./error.ts";
export { compileGbnf, Grammar } from "./grammar.ts";
export { Constraint, type ConstraintOptions } from "./constraint.ts";
export { jsonSchemaToGbnf } from "./json_schema.ts";

const schemaCache = new GrammarCache();

/**
 * Compiles a JSON Schema to a {@link Grammar} whose every output is JSON the schema accepts
 * (cached by the schema's JSON text). Supported: `type` (and type arrays), `properties` (in
 * declared order), `required`, `additionalProperties`, `items`, `prefixItems`, `minItems`,
 * `maxItems`, `enum`, `const`, `minLength`, `maxLength`, `format` (date, time, date-time,
 * uuid; email, hostname, ipv4, uri as subsets), `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` (exact on integers; on
 * numbers moved inward to whole numbers), `anyOf`, `oneOf`,
 * one-schema `allOf`, local `$ref` with `$defs`/`definitions` (recursion included),
 * `nullable`, and annotations. Anything else throws a `GrammarError` naming the keyword and
 * its JSON path. Whitespace between tokens is bounded (one space, or a newline and up to 20
 * spaces or tabs); at most one space before the value (as RWKV writes after "Assistant:"),
 * none after.
 * @example
 * ```ts
 * import { compileJsonSchema } from "./mod.ts";
 * const g = compileJsonSchema({ type: "array", items: { type: "integer", minimum: 1, maximum: 6 }, maxItems: 3 });
 * console.log(g.gbnf.split("\n")[0]); // the root rule
 * ```
 */
export function compileJsonSchema(schema: unknown): Grammar {
  const key = JSON.stringify(schema);
  if (key === undefined) return new Grammar(jsonSchemaToGbnf(schema)); // throws the schema error
  return schemaCache.get(key, () => new Grammar(jsonSchemaToGbnf(schema)));
}

let jsonObject: Grammar | undefined;

/**
 * The grammar of OpenAI's "json_object" mode: any JSON object (whitespace bounded as in
 * {@link compileJsonSchema}).
 * @example
 * ```ts
 * import { jsonObjectGrammar } from "./mod.ts";
 * console.log(jsonObjectGrammar() === jsonObjectGrammar()); // true: compiled once
 * ```
 */
export function jsonObjectGrammar(): Grammar {
  return jsonObject ??= new Grammar(jsonSchemaToGbnf({ type: "object" }));
}
