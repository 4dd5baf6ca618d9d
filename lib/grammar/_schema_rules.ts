/**
 * The shared vocabulary of the JSON Schema converter (`json_schema.ts`): the keywords it
 * knows, the base GBNF rules a converted grammar may use (JSON tokens, bounded whitespace, string
 * formats), and the {@link SchemaContext} through which the per-type rules call back into it.
 * @module
 */

/** Keywords that only annotate: accepted, no effect on the output. */
export const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$comment",
  "title",
  "description",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "$defs",
  "definitions",
]);

/** The keywords of each type: any of them without `type` implies the type. */
export const OBJECT_KEYWORDS = ["properties", "required", "additionalProperties"];
export const ARRAY_KEYWORDS = [
  "items",
  "prefixItems",
  "additionalItems",
  "minItems",
  "maxItems",
  "uniqueItems",
];
export const STRING_KEYWORDS = ["minLength", "maxLength", "format", "pattern"];
export const NUMBER_KEYWORDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
/** Every keyword the converter accepts. */
export const KNOWN = new Set([
  ...ANNOTATIONS,
  "$ref",
  "type",
  "const",
  "enum",
  "anyOf",
  "oneOf",
  "allOf",
  "nullable",
  ...OBJECT_KEYWORDS,
  ...ARRAY_KEYWORDS,
  ...STRING_KEYWORDS,
  ...NUMBER_KEYWORDS,
]);
/** The JSON-Schema type names. */
export const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];

/** Rules every converted grammar may use. */
export const BASE_RULES: Record<string, string> = {
  "ws": '( " " | "\\n" [ \\t]{0,20} )?',
  "json-char": '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
  "json-string": '"\\"" json-char* "\\""',
  "json-int": '"0" | [1-9] [0-9]{0,15}',
  "json-integer": '"-"? json-int',
  "json-number": '"-"? json-int ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?',
  "json-boolean": '"true" | "false"',
  "json-null": '"null"',
  "json-value": "json-object | json-array | json-string | json-number | json-boolean | json-null",
  "json-object":
    '"{" ws ( json-string ws ":" ws json-value ws ( "," ws json-string ws ":" ws json-value ws )* )? "}"',
  "json-array": '"[" ws ( json-value ws ( "," ws json-value ws )* )? "]"',
  "date":
    '[0-9]{4} "-" ( ( "01" | "03" | "05" | "07" | "08" | "10" | "12" ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "04" | "06" | "09" | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) )',
  "time":
    '( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )',
  "date-time": 'date "T" time',
  "uuid":
    '[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}',
  // Subsets of RFC 5321 / 1123 / 3986 that every validator accepts (ajv-formats' full mode,
  // zod's email, the URL parser): lower-case labels, short parts.
  "dns-label": "[a-z0-9] ( [a-z0-9-]{0,16} [a-z0-9] )?",
  "hostname": 'dns-label ( "." dns-label ){0,3}',
  "email": '[a-z0-9_+-]{1,24} ( "." [a-z0-9_+-]{1,24} ){0,2} "@" dns-label ( "." dns-label ){1,2}',
  "ipv4-octet": '( [0-9] | [1-9] [0-9] | "1" [0-9] [0-9] | "2" [0-4] [0-9] | "25" [0-5] )',
  "ipv4": 'ipv4-octet "." ipv4-octet "." ipv4-octet "." ipv4-octet',
  "uri":
    '"http" "s"? "://" hostname ( "/" [a-zA-Z0-9._~-]{0,20} ){0,4} ( "?" [a-zA-Z0-9._~=&-]{1,30} )?',
};
/** The base rules each base rule refers to. */
export const DEPENDS: Record<string, string[]> = {
  "json-string": ["json-char"],
  "json-integer": ["json-int"],
  "json-number": ["json-int"],
  "json-value": [
    "json-object",
    "json-array",
    "json-string",
    "json-number",
    "json-boolean",
    "json-null",
  ],
  "json-object": ["ws", "json-string", "json-value"],
  "json-array": ["ws", "json-value"],
  "date-time": ["date", "time"],
  "hostname": ["dns-label"],
  "email": ["dns-label"],
  "ipv4": ["ipv4-octet"],
  "uri": ["hostname"],
};
/** The string formats with a base rule of their name. */
export const FORMATS = new Set([
  "date",
  "time",
  "date-time",
  "uuid",
  "email",
  "hostname",
  "ipv4",
  "uri",
]);

/** A GBNF string literal for `text`. */
export function gbnfLiteral(text: string): string {
  return '"' + text.replace(/[\\"]/g, "\\$&").replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"),
  ) + '"';
}

/** Whether `x` is a JSON object (not null, not an array). */
export const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * What the per-type rules need from the converter that owns the grammar being built: errors,
 * base rules, named rules and the conversion of a subschema.
 */
export interface SchemaContext {
  /** Throws the `GrammarError` naming `path`. */
  fail(path: string, message: string): never;
  /** Marks base rule `rule` used (its definition is written out) and returns its name. */
  use(rule: string): string;
  /** A new named rule for `body`, its name made from `hint`. */
  rule(hint: string, body: string): string;
  /** The GBNF expression of `schema`, found at `path`. */
  visit(schema: unknown, path: string, hint: string): string;
}

/** A count keyword (`minLength`, `maxItems`…) of `schema`: a whole number ≥ 0, or undefined. */
export function count(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  key: string,
  path: string,
): number | undefined {
  const v = schema[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    cx.fail(`${path}/${key}`, `${key} must be a whole number ≥ 0`);
  }
  if (v > 100_000) cx.fail(`${path}/${key}`, `${key} above 100000 is not supported`);
  return v;
}
