/**
 * JSON Schema → GBNF. Every output of the grammar is valid JSON that the schema accepts;
 * keywords that would constrain the output in ways the grammar cannot follow are refused with
 * a {@link GrammarError} naming the keyword and its JSON path, never skipped.
 *
 * Choices (documented, not silent):
 * - whitespace: at most one space before the value (RWKV models write " {" after
 *   "Assistant:"; JSON parsers skip it), none after; between tokens at most one space, or one
 *   newline followed by at most 20 spaces or tabs (`ws`), so a model cannot loop on
 *   whitespace, while compact and pretty-printed JSON (to depth 10) both fit;
 * - objects: the declared properties in declared order, optional ones skippable; no
 *   undeclared property is generated when `properties` are given, whatever
 *   `additionalProperties` says (the output validates either way); without `properties`, an
 *   object is any JSON object (or `{}` under `additionalProperties: false`, or a map of
 *   `additionalProperties` values);
 * - numbers: at most 16 integer digits, 16 fraction digits and 2 exponent digits; `minimum` /
 *   `maximum` / `exclusive*` exactly on integers; on `number` the bounds are moved inward to
 *   whole numbers (minimum 0.5 generates from 1; an exclusive whole bound from the next
 *   integer) and bounded numbers have no exponent;
 * - `oneOf` is generated as `anyOf` (write disjoint branches);
 * - `pattern`: whole matches of the pattern (a subset of the strings the unanchored pattern
 *   accepts), ECMAScript syntax without lookaround, backreferences or word boundaries;
 * - formats `date` (February up to the 28th), `time` (with a time zone), `date-time`, `uuid`,
 *   and subsets of `email`, `hostname`, `ipv4`, `uri` (lower-case host names, http(s) URIs).
 * @module
 */

import { GrammarError } from "./error.ts";
import { PatternError, patternToGbnf } from "./regex.ts";

/** Keywords that only annotate: accepted, no effect on the output. */
const ANNOTATIONS = new Set([
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

const OBJECT_KEYWORDS = ["properties", "required", "additionalProperties"];
const ARRAY_KEYWORDS = [
  "items",
  "prefixItems",
  "additionalItems",
  "minItems",
  "maxItems",
  "uniqueItems",
];
const STRING_KEYWORDS = ["minLength", "maxLength", "format", "pattern"];
const NUMBER_KEYWORDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
const KNOWN = new Set([
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
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];

/** Rules every converted grammar may use. */
const BASE_RULES: Record<string, string> = {
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
const DEPENDS: Record<string, string[]> = {
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
const FORMATS = new Set(["date", "time", "date-time", "uuid", "email", "hostname", "ipv4", "uri"]);

/** A GBNF string literal for `text`. */
export function gbnfLiteral(text: string): string {
  return '"' + text.replace(/[\\"]/g, "\\$&").replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"),
  ) + '"';
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * Converts a JSON Schema to GBNF text (its start rule is `root`). Throws
 * {@link GrammarError} naming the JSON path and keyword of anything unsupported.
 * @example
 * ```ts
 * import { jsonSchemaToGbnf } from "./mod.ts";
 * console.log(jsonSchemaToGbnf({ enum: ["red", "green"] })); // root ::= ( "\"red\"" | ... )
 * ```
 */
export function jsonSchemaToGbnf(schema: unknown): string {
  return new Converter(schema).convert();
}

class Converter {
  #root: unknown;
  #rules = new Map<string, string>();
  #base = new Set<string>();
  #refs = new Map<string, string>();
  #names = new Set<string>(["root", ...Object.keys(BASE_RULES)]);

  constructor(root: unknown) {
    this.#root = root;
  }

  convert(): string {
    const body = this.#visit(this.#root, "#", "root");
    const lines = [`root ::= " "? ${body}`];
    for (const [name, rule] of this.#rules) lines.push(`${name} ::= ${rule}`);
    const base = new Set<string>();
    const add = (n: string) => {
      if (base.has(n)) return;
      base.add(n);
      for (const d of DEPENDS[n] ?? []) add(d);
    };
    for (const n of this.#base) add(n);
    for (const n of Object.keys(BASE_RULES)) {
      if (base.has(n)) lines.push(`${n} ::= ${BASE_RULES[n]}`);
    }
    return lines.join("\n") + "\n";
  }

  #fail(path: string, message: string): never {
    throw new GrammarError(`JSON Schema ${path}: ${message}`);
  }

  #use(rule: string): string {
    this.#base.add(rule);
    return rule;
  }

  /** A fresh rule name from `hint`. */
  #name(hint: string): string {
    const base = hint.replace(/[^A-Za-z0-9-]+/g, "-").replace(/^-+|-+$/g, "") || "r";
    let name = base;
    for (let i = 2; this.#names.has(name); i++) name = `${base}-${i}`;
    this.#names.add(name);
    return name;
  }

  /** A named rule for `body`. */
  #rule(hint: string, body: string): string {
    const name = this.#name(hint);
    this.#rules.set(name, body);
    return name;
  }

  /** The GBNF expression of `schema`, found at `path`. */
  #visit(schema: unknown, path: string, hint: string): string {
    if (schema === true) return this.#use("json-value");
    if (schema === false) this.#fail(path, "the schema false allows no value");
    if (!isObject(schema)) this.#fail(path, "a schema must be an object or a boolean");
    for (const k of Object.keys(schema)) {
      if (!KNOWN.has(k)) this.#fail(`${path}/${k}`, `unsupported keyword "${k}"`);
    }
    let expr: string;
    const applicators = ["$ref", "const", "enum", "anyOf", "oneOf", "allOf"].filter((k) =>
      k in schema
    );
    if (applicators.length > 1 && !(applicators.length === 2 && "const" in schema)) {
      this.#fail(path, `"${applicators[0]}" beside "${applicators[1]}" is not supported`);
    }
    const typeKeywords = Object.keys(schema).filter((k) =>
      !ANNOTATIONS.has(k) && k !== "nullable" && !applicators.includes(k)
    );
    const applicator = applicators[0];
    if (
      applicator === "$ref" || applicator === "anyOf" || applicator === "oneOf" ||
      applicator === "allOf"
    ) {
      if (typeKeywords.length) {
        this.#fail(
          `${path}/${typeKeywords[0]}`,
          `"${typeKeywords[0]}" beside "${applicator}" is not supported`,
        );
      }
    }
    if ("const" in schema || applicator === "enum") {
      expr = this.#values(schema, path, typeKeywords);
    } else if (applicator === "$ref") {
      expr = this.#ref(schema.$ref, `${path}/$ref`);
    } else if (applicator === "anyOf" || applicator === "oneOf") {
      const subs = schema[applicator];
      if (!Array.isArray(subs) || subs.length === 0) {
        this.#fail(`${path}/${applicator}`, `${applicator} must be a non-empty array`);
      }
      // a branch `false` allows nothing: leave it out
      const alts = subs.flatMap((s, i) =>
        s === false ? [] : [this.#visit(s, `${path}/${applicator}/${i}`, `${hint}-${i}`)]
      );
      if (alts.length === 0) this.#fail(`${path}/${applicator}`, "every branch is false");
      expr = `( ${alts.join(" | ")} )`;
    } else if (applicator === "allOf") {
      const subs = schema.allOf;
      if (!Array.isArray(subs) || subs.length !== 1) {
        this.#fail(`${path}/allOf`, "allOf is supported with exactly one schema");
      }
      expr = this.#visit(subs[0], `${path}/allOf/0`, hint);
    } else {
      expr = this.#typed(schema, path, hint);
    }
    if (schema.nullable !== undefined && typeof schema.nullable !== "boolean") {
      this.#fail(`${path}/nullable`, "nullable must be a boolean");
    }
    if (schema.nullable === true) expr = `( ${expr} | ${this.#use("json-null")} )`;
    return expr;
  }

  /** `const` / `enum`: the listed values, of the sibling `type` if there is one. */
  #values(schema: Record<string, unknown>, path: string, typeKeywords: string[]): string {
    const which = "const" in schema ? "const" : "enum";
    const list = schema.enum;
    if ("enum" in schema && (!Array.isArray(list) || list.length === 0)) {
      this.#fail(`${path}/enum`, "enum must be a non-empty array");
    }
    let values: unknown[] = which === "const" ? [schema.const] : list as unknown[];
    if (which === "const" && Array.isArray(list)) {
      const c = JSON.stringify(schema.const);
      if (!list.some((v) => JSON.stringify(v) === c)) {
        this.#fail(`${path}/const`, "const is not among the enum values");
      }
    }
    const other = typeKeywords.find((k) => k !== "type");
    if (other) this.#fail(`${path}/${other}`, `"${other}" beside "${which}" is not supported`);
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      values = values.filter((v) => types.some((t) => hasType(v, t)));
      if (values.length === 0) this.#fail(`${path}/type`, `no ${which} value is of this type`);
    }
    const alts = values.map((v, i) =>
      this.#literal(v, `${path}/${which}${which === "enum" ? `/${i}` : ""}`)
    );
    return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
  }

  #literal(value: unknown, path: string): string {
    const text = JSON.stringify(value);
    if (text === undefined) this.#fail(path, "not a JSON value");
    return gbnfLiteral(text);
  }

  #ref(ref: unknown, path: string): string {
    if (typeof ref !== "string") this.#fail(path, "$ref must be a string");
    let name = this.#refs.get(ref);
    if (name) return name;
    if (!ref.startsWith("#")) {
      this.#fail(path, `only local references ("#/…") are supported, not ${ref}`);
    }
    let target: unknown = this.#root;
    const pointer = decodeURIComponent(ref.slice(1));
    if (pointer !== "" && !pointer.startsWith("/")) {
      this.#fail(path, `unsupported reference ${ref} (anchors are not supported)`);
    }
    for (const raw of pointer === "" ? [] : pointer.slice(1).split("/")) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (!isObject(target) && !Array.isArray(target)) this.#fail(path, `cannot resolve ${ref}`);
      target = (target as Record<string, unknown>)[key];
      if (target === undefined) this.#fail(path, `cannot resolve ${ref}`);
    }
    name = this.#name(pointer.split("/").pop() || "root-ref");
    this.#refs.set(ref, name);
    this.#rules.set(name, ""); // placeholder keeps the order; filled below
    this.#rules.set(name, this.#visit(target, ref, name));
    return name;
  }

  #typed(schema: Record<string, unknown>, path: string, hint: string): string {
    let types: string[];
    if (schema.type === undefined) {
      types = [];
      const has = (ks: string[]) => ks.some((k) => k in schema);
      if (has(OBJECT_KEYWORDS)) types.push("object");
      if (has(ARRAY_KEYWORDS)) types.push("array");
      if (has(STRING_KEYWORDS)) types.push("string");
      if (has(NUMBER_KEYWORDS)) types.push("number");
      if (types.length === 0) return this.#use("json-value");
    } else {
      types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (types.length === 0) this.#fail(`${path}/type`, "type must not be empty");
      for (const [i, t] of types.entries()) {
        if (typeof t !== "string" || !TYPES.includes(t)) {
          this.#fail(
            `${path}/type${Array.isArray(schema.type) ? `/${i}` : ""}`,
            `unknown type ${JSON.stringify(t)}`,
          );
        }
      }
    }
    const alts = types.map((t) => {
      switch (t) {
        case "object":
          return this.#object(schema, path, hint);
        case "array":
          return this.#array(schema, path, hint);
        case "string":
          return this.#string(schema, path, hint);
        case "number":
        case "integer":
          return this.#number(schema, path, t);
        case "boolean":
          return this.#use("json-boolean");
        default:
          return this.#use("json-null");
      }
    });
    return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
  }

  #object(schema: Record<string, unknown>, path: string, hint: string): string {
    const props = schema.properties ?? {};
    if (!isObject(props)) this.#fail(`${path}/properties`, "properties must be an object");
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
      this.#fail(`${path}/required`, "required must be an array of strings");
    }
    const entries: [string, unknown, string][] = Object.entries(props).map(([k, v]) => [
      k,
      v,
      `${path}/properties/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`,
    ]);
    for (const r of required as string[]) {
      if (!(r in props)) entries.push([r, true, `${path}/required`]);
    }
    // an optional property whose schema is false must be absent: never write it
    for (let i = entries.length - 1; i >= 0; i--) {
      if (entries[i][1] === false && !(required as string[]).includes(entries[i][0])) {
        entries.splice(i, 1);
      }
    }
    const ap = schema.additionalProperties;
    if (ap !== undefined && typeof ap !== "boolean" && !isObject(ap)) {
      this.#fail(`${path}/additionalProperties`, "additionalProperties must be a schema");
    }
    const ws = this.#use("ws");
    if (entries.length === 0) {
      if (ap === false) return `"{" ${ws} "}"`;
      if (ap === undefined || ap === true) return this.#use("json-object");
      const v = this.#visit(ap, `${path}/additionalProperties`, `${hint}-value`);
      const kv = `${this.#use("json-string")} ${ws} ":" ${ws} ${v} ${ws}`;
      return `"{" ${ws} ( ${kv} ( "," ${ws} ${kv} )* )? "}"`;
    }
    const req = new Set(required as string[]);
    const kvs = entries.map(([k, v, p]) =>
      this.#rule(
        `${hint}-${k}-kv`,
        `${gbnfLiteral(JSON.stringify(k))} ${ws} ":" ${ws} ${this.#visit(v, p, `${hint}-${k}`)}`,
      )
    );
    const optional = entries.map(([k]) => !req.has(k));
    const n = entries.length;
    // rest(i): what may follow once a property before i was written (a comma first).
    const rest: string[] = new Array(n + 1);
    rest[n] = "";
    const choices = (i: number, comma: boolean): string => {
      const alts: string[] = [];
      for (let j = i; j < n; j++) {
        alts.push(`${comma ? `"," ${ws} ` : ""}${kvs[j]} ${ws} ${rest[j + 1]}`.trim());
        if (!optional[j]) break;
      }
      const allOptional = optional.slice(i).every((o) => o);
      if (allOptional) alts.push("");
      return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
    };
    for (let i = n - 1; i >= 1; i--) {
      const body = choices(i, true);
      rest[i] = body === "" ? "" : this.#rule(`${hint}-rest-${i}`, body);
    }
    return `"{" ${ws} ${choices(0, false)} "}"`;
  }

  #count(schema: Record<string, unknown>, key: string, path: string): number | undefined {
    const v = schema[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      this.#fail(`${path}/${key}`, `${key} must be a whole number ≥ 0`);
    }
    if (v > 100_000) this.#fail(`${path}/${key}`, `${key} above 100000 is not supported`);
    return v;
  }

  #array(schema: Record<string, unknown>, path: string, hint: string): string {
    let prefix: unknown[] = [];
    let tail: unknown;
    let tailPath: string;
    if (schema.uniqueItems !== undefined && schema.uniqueItems !== false) {
      this.#fail(`${path}/uniqueItems`, "uniqueItems is not supported");
    }
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) {
        this.#fail(`${path}/prefixItems`, "prefixItems must be an array");
      }
      prefix = schema.prefixItems;
      tail = schema.items ?? true;
      tailPath = `${path}/items`;
      if ("additionalItems" in schema) {
        this.#fail(
          `${path}/additionalItems`,
          "additionalItems beside prefixItems is not supported",
        );
      }
    } else if (Array.isArray(schema.items)) {
      prefix = schema.items; // draft 4–7 tuples
      tail = schema.additionalItems ?? true;
      tailPath = `${path}/additionalItems`;
    } else {
      tail = schema.items ?? true;
      tailPath = `${path}/items`;
    }
    const min = this.#count(schema, "minItems", path) ?? 0;
    const max = this.#count(schema, "maxItems", path) ?? Infinity;
    const p = prefix.length;
    const most = tail === false ? Math.min(max, p) : max;
    if (min > most) {
      this.#fail(`${path}/minItems`, `minItems ${min} is more than the items allow (${most})`);
    }
    const ws = this.#use("ws");
    const elems = prefix.map((s, i) =>
      this.#visit(s, `${path}/${schema.prefixItems ? "prefixItems" : "items"}/${i}`, `${hint}-${i}`)
    );
    const item = tail === false || most <= p ? "" : this.#visit(tail, tailPath, `${hint}-item`);
    const content = (k: number): string => {
      if (k >= most) return "";
      const sep = k === 0 ? "" : `"," ${ws} `;
      if (k < p) {
        const one = `${sep}${elems[k]} ${ws} ${content(k + 1)}`.trim();
        return k < min ? one : `( ${one} )?`;
      }
      const a = Math.max(0, min - k), b = most - k;
      const bound = (x: number, y: number) => `{${x},${y === Infinity ? "" : y}}`;
      if (k === 0) {
        const inner = `${item} ${ws} ( "," ${ws} ${item} ${ws} )${
          bound(Math.max(0, a - 1), b - 1)
        }`;
        return a >= 1 ? inner : `( ${inner} )?`;
      }
      return `( "," ${ws} ${item} ${ws} )${bound(a, b)}`;
    };
    return `"[" ${ws} ${content(0)} "]"`;
  }

  #string(schema: Record<string, unknown>, path: string, _hint: string): string {
    const min = this.#count(schema, "minLength", path);
    const max = this.#count(schema, "maxLength", path);
    const format = schema.format;
    if (schema.pattern !== undefined) {
      const pattern = schema.pattern;
      if (typeof pattern !== "string") this.#fail(`${path}/pattern`, "pattern must be a string");
      if (format !== undefined || min !== undefined || max !== undefined) {
        this.#fail(
          `${path}/pattern`,
          "pattern beside format, minLength or maxLength is not supported",
        );
      }
      try {
        return `"\\"" ${patternToGbnf(pattern)} "\\""`;
      } catch (e) {
        if (e instanceof PatternError) {
          this.#fail(`${path}/pattern`, `${e.message} in ${JSON.stringify(pattern)}`);
        }
        throw e;
      }
    }
    if (format !== undefined) {
      if (typeof format !== "string" || !FORMATS.has(format)) {
        this.#fail(
          `${path}/format`,
          `unsupported format ${JSON.stringify(format)} (supported: ${[...FORMATS].join(", ")})`,
        );
      }
      if (min !== undefined || max !== undefined) {
        this.#fail(`${path}/format`, "format beside minLength/maxLength is not supported");
      }
      return `"\\"" ${this.#use(format)} "\\""`;
    }
    if (min === undefined && max === undefined) return this.#use("json-string");
    if ((min ?? 0) > (max ?? Infinity)) {
      this.#fail(`${path}/minLength`, "minLength is above maxLength");
    }
    return `"\\"" ${this.#use("json-char")}{${min ?? 0},${max ?? ""}} "\\""`;
  }

  #number(schema: Record<string, unknown>, path: string, type: string): string {
    if (schema.format !== undefined) {
      // numeric formats (int32, float…) of OpenAPI / ajv-formats would bound the value
      this.#fail(
        `${path}/format`,
        `unsupported format ${JSON.stringify(schema.format)} on type ${type}`,
      );
    }
    const bounded = NUMBER_KEYWORDS.filter((k) => schema[k] !== undefined);
    if (bounded.length === 0) return this.#use(type === "integer" ? "json-integer" : "json-number");
    const num = (k: string): number | boolean | undefined => {
      const v = schema[k];
      if (v === undefined) return undefined;
      if (typeof v === "boolean" && (k === "exclusiveMinimum" || k === "exclusiveMaximum")) {
        return v;
      }
      if (typeof v !== "number" || !Number.isFinite(v)) {
        this.#fail(`${path}/${k}`, `${k} must be a number`);
      }
      return v;
    };
    const min = num("minimum"), max = num("maximum");
    const emin = num("exclusiveMinimum"), emax = num("exclusiveMaximum");
    if (
      (emin === true && typeof min !== "number") || (emax === true && typeof max !== "number")
    ) {
      this.#fail(
        `${path}/${emin === true ? "exclusiveMinimum" : "exclusiveMaximum"}`,
        "a boolean exclusive bound needs its minimum/maximum",
      );
    }
    // Whole-number bounds, each inclusive or exclusive; a fractional bound moves inward to the
    // next whole number (inclusive): a subset of the schema's values is generated.
    const cap = 10n ** 16n - 1n;
    let lo = -cap, loEx = false, hi = cap, hiEx = false;
    const raise = (x: number, exclusive: boolean) => {
      const [v, ex] = Number.isInteger(x) ? [BigInt(x), exclusive] : [BigInt(Math.ceil(x)), false];
      if (v > lo || (v === lo && ex)) (lo = v, loEx = ex);
    };
    const lower = (x: number, exclusive: boolean) => {
      const [v, ex] = Number.isInteger(x) ? [BigInt(x), exclusive] : [BigInt(Math.floor(x)), false];
      if (v < hi || (v === hi && ex)) (hi = v, hiEx = ex);
    };
    if (typeof min === "number") raise(min, emin === true);
    if (typeof max === "number") lower(max, emax === true);
    if (typeof emin === "number") raise(emin, true);
    if (typeof emax === "number") lower(emax, true);
    const where = `${path}/${bounded[0]}`;
    if (lo > cap || hi < -cap) this.#fail(where, "bound beyond the 16 digits generated");
    if (lo < -cap) (lo = -cap, loEx = false);
    if (hi > cap) (hi = cap, hiEx = false);
    const wholeLo = loEx ? lo + 1n : lo, wholeHi = hiEx ? hi - 1n : hi;
    const alts: string[] = [];
    if (wholeLo <= wholeHi) alts.push(integerRange(wholeLo, wholeHi));
    if (type === "number") {
      // "p.ddd" lies in [p, p + 1) (in (p, p + 1) with a nonzero digit), "-k.ddd" in
      // (-(k + 1), -k] (in (-(k + 1), -k) with a nonzero digit).
      const frac = '"." [0-9]{1,16}', nonzero = '"." [0-9]{0,15} [1-9]';
      const side = (from: bigint, to: bigint, openAt: bigint | undefined, sign: string) => {
        if (from > to) return;
        if (openAt === from) {
          alts.push(`${sign}"${from}" ${nonzero}`);
          from++;
        }
        if (from <= to) alts.push(`${sign}${naturalRange(from, to)} ${frac}`);
      };
      side(lo > 0n ? lo : 0n, hi - 1n, loEx ? lo : undefined, "");
      side(-hi > 0n ? -hi : 0n, -lo - 1n, hiEx ? -hi : undefined, '"-" ');
    }
    if (alts.length === 0) this.#fail(where, "no value lies within the bounds");
    return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
  }
}

/** Whether JSON `value` is of JSON-Schema type `type`. */
function hasType(value: unknown, type: unknown): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number";
    case "string":
      return typeof value === "string";
    case "array":
      return Array.isArray(value);
    case "object":
      return isObject(value);
    default:
      return false;
  }
}

/** GBNF for the integers in [lo, hi] written without leading zeros (no "-0"). */
export function integerRange(lo: bigint, hi: bigint): string {
  const parts: string[] = [];
  if (lo < 0n) parts.push(`"-" ${naturalRange(hi < 0n ? -hi : 1n, -lo)}`);
  if (hi >= 0n) parts.push(naturalRange(lo > 0n ? lo : 0n, hi));
  return parts.length === 1 ? parts[0] : `( ${parts.join(" | ")} )`;
}

function naturalRange(a: bigint, b: bigint): string {
  const alts: string[] = [];
  const digits = (x: bigint) => x.toString().length;
  for (let len = digits(a); len <= digits(b); len++) {
    const first = len === 1 ? 0n : 10n ** BigInt(len - 1), last = 10n ** BigInt(len) - 1n;
    const l = a > first ? a : first, h = b < last ? b : last;
    if (l <= h) alts.push(sameLength(l.toString(), h.toString()));
  }
  return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
}

/** Digit strings of one length from l to h. */
function sameLength(l: string, h: string): string {
  if (l === h) return `"${l}"`;
  if (l.length === 1) return `[${l}-${h}]`;
  if (l[0] === h[0]) return `"${l[0]}" ${sameLength(l.slice(1), h.slice(1))}`;
  const rest = l.length - 1;
  const lowAll = /^0*$/.test(l.slice(1)), highAll = /^9*$/.test(h.slice(1));
  const parts: string[] = [];
  if (!lowAll) parts.push(`"${l[0]}" ${sameLength(l.slice(1), "9".repeat(rest))}`);
  const midLo = Number(l[0]) + (lowAll ? 0 : 1), midHi = Number(h[0]) - (highAll ? 0 : 1);
  if (midLo <= midHi) parts.push(`[${midLo}-${midHi}] [0-9]{${rest}}`);
  if (!highAll) parts.push(`"${h[0]}" ${sameLength("0".repeat(rest), h.slice(1))}`);
  return parts.length === 1 ? parts[0] : `( ${parts.join(" | ")} )`;
}
