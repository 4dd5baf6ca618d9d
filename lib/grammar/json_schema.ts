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
 *
 * This module walks the schema (applicators, `$ref`, types); the rules of each type are in
 * `_schema_object.ts`, `_schema_array.ts`, `_schema_string.ts`, `_schema_number.ts` and
 * `_schema_values.ts` (`const` / `enum`), their shared vocabulary in `_schema_rules.ts`.
 * @module
 */

import { GrammarError } from "./error.ts";
import { arrayRule } from "./_schema_array.ts";
import { numberRule } from "./_schema_number.ts";
import { objectRule } from "./_schema_object.ts";
import {
  ANNOTATIONS,
  ARRAY_KEYWORDS,
  BASE_RULES,
  DEPENDS,
  isObject,
  KNOWN,
  NUMBER_KEYWORDS,
  OBJECT_KEYWORDS,
  type SchemaContext,
  STRING_KEYWORDS,
  TYPES,
} from "./_schema_rules.ts";
import { stringRule } from "./_schema_string.ts";
import { valuesRule } from "./_schema_values.ts";

export { gbnfLiteral } from "./_schema_rules.ts";
export { integerRange } from "./_schema_number.ts";

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

/** One conversion: the rules written so far, the references resolved, the names taken. */
class Converter implements SchemaContext {
  #root: unknown;
  #rules = new Map<string, string>();
  #base = new Set<string>();
  #refs = new Map<string, string>();
  #names = new Set<string>(["root", ...Object.keys(BASE_RULES)]);

  constructor(root: unknown) {
    this.#root = root;
  }

  convert(): string {
    const body = this.visit(this.#root, "#", "root");
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

  fail(path: string, message: string): never {
    throw new GrammarError(`JSON Schema ${path}: ${message}`);
  }

  use(rule: string): string {
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
  rule(hint: string, body: string): string {
    const name = this.#name(hint);
    this.#rules.set(name, body);
    return name;
  }

  /** The GBNF expression of `schema`, found at `path`. */
  visit(schema: unknown, path: string, hint: string): string {
    if (schema === true) return this.use("json-value");
    if (schema === false) this.fail(path, "the schema false allows no value");
    if (!isObject(schema)) this.fail(path, "a schema must be an object or a boolean");
    for (const k of Object.keys(schema)) {
      if (!KNOWN.has(k)) this.fail(`${path}/${k}`, `unsupported keyword "${k}"`);
    }
    let expr: string;
    const applicators = ["$ref", "const", "enum", "anyOf", "oneOf", "allOf"].filter((k) =>
      k in schema
    );
    if (applicators.length > 1 && !(applicators.length === 2 && "const" in schema)) {
      this.fail(path, `"${applicators[0]}" beside "${applicators[1]}" is not supported`);
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
        this.fail(
          `${path}/${typeKeywords[0]}`,
          `"${typeKeywords[0]}" beside "${applicator}" is not supported`,
        );
      }
    }
    if ("const" in schema || applicator === "enum") {
      expr = valuesRule(this, schema, path, typeKeywords);
    } else if (applicator === "$ref") {
      expr = this.#ref(schema.$ref, `${path}/$ref`);
    } else if (applicator === "anyOf" || applicator === "oneOf") {
      const subs = schema[applicator];
      if (!Array.isArray(subs) || subs.length === 0) {
        this.fail(`${path}/${applicator}`, `${applicator} must be a non-empty array`);
      }
      // a branch `false` allows nothing: leave it out
      const alts = subs.flatMap((s, i) =>
        s === false ? [] : [this.visit(s, `${path}/${applicator}/${i}`, `${hint}-${i}`)]
      );
      if (alts.length === 0) this.fail(`${path}/${applicator}`, "every branch is false");
      expr = `( ${alts.join(" | ")} )`;
    } else if (applicator === "allOf") {
      const subs = schema.allOf;
      if (!Array.isArray(subs) || subs.length !== 1) {
        this.fail(`${path}/allOf`, "allOf is supported with exactly one schema");
      }
      expr = this.visit(subs[0], `${path}/allOf/0`, hint);
    } else {
      expr = this.#typed(schema, path, hint);
    }
    if (schema.nullable !== undefined && typeof schema.nullable !== "boolean") {
      this.fail(`${path}/nullable`, "nullable must be a boolean");
    }
    if (schema.nullable === true) expr = `( ${expr} | ${this.use("json-null")} )`;
    return expr;
  }

  /** A local `$ref` (into `$defs`, `definitions` or anywhere): one named rule per target. */
  #ref(ref: unknown, path: string): string {
    if (typeof ref !== "string") this.fail(path, "$ref must be a string");
    let name = this.#refs.get(ref);
    if (name) return name;
    if (!ref.startsWith("#")) {
      this.fail(path, `only local references ("#/…") are supported, not ${ref}`);
    }
    let target: unknown = this.#root;
    const pointer = decodeURIComponent(ref.slice(1));
    if (pointer !== "" && !pointer.startsWith("/")) {
      this.fail(path, `unsupported reference ${ref} (anchors are not supported)`);
    }
    for (const raw of pointer === "" ? [] : pointer.slice(1).split("/")) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (!isObject(target) && !Array.isArray(target)) this.fail(path, `cannot resolve ${ref}`);
      target = (target as Record<string, unknown>)[key];
      if (target === undefined) this.fail(path, `cannot resolve ${ref}`);
    }
    name = this.#name(pointer.split("/").pop() || "root-ref");
    this.#refs.set(ref, name);
    this.#rules.set(name, ""); // placeholder keeps the order; filled below
    this.#rules.set(name, this.visit(target, ref, name));
    return name;
  }

  /** A schema of `type` (or of the types its keywords imply). */
  #typed(schema: Record<string, unknown>, path: string, hint: string): string {
    let types: string[];
    if (schema.type === undefined) {
      types = [];
      const has = (ks: string[]) => ks.some((k) => k in schema);
      if (has(OBJECT_KEYWORDS)) types.push("object");
      if (has(ARRAY_KEYWORDS)) types.push("array");
      if (has(STRING_KEYWORDS)) types.push("string");
      if (has(NUMBER_KEYWORDS)) types.push("number");
      if (types.length === 0) return this.use("json-value");
    } else {
      types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (types.length === 0) this.fail(`${path}/type`, "type must not be empty");
      for (const [i, t] of types.entries()) {
        if (typeof t !== "string" || !TYPES.includes(t)) {
          this.fail(
            `${path}/type${Array.isArray(schema.type) ? `/${i}` : ""}`,
            `unknown type ${JSON.stringify(t)}`,
          );
        }
      }
    }
    const alts = types.map((t) => {
      switch (t) {
        case "object":
          return objectRule(this, schema, path, hint);
        case "array":
          return arrayRule(this, schema, path, hint);
        case "string":
          return stringRule(this, schema, path);
        case "number":
        case "integer":
          return numberRule(this, schema, path, t);
        case "boolean":
          return this.use("json-boolean");
        default:
          return this.use("json-null");
      }
    });
    return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
  }
}
