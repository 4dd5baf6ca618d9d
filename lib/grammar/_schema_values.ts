/**
 * JSON Schema `const` and `enum` as GBNF: the listed values as literals, filtered by a sibling
 * `type`.
 * @module
 */

import { gbnfLiteral, isObject, type SchemaContext } from "./_schema_rules.ts";

/** `const` / `enum`: the listed values, of the sibling `type` if there is one. */
export function valuesRule(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  path: string,
  typeKeywords: string[],
): string {
  const which = "const" in schema ? "const" : "enum";
  const list = schema.enum;
  if ("enum" in schema && (!Array.isArray(list) || list.length === 0)) {
    cx.fail(`${path}/enum`, "enum must be a non-empty array");
  }
  let values: unknown[] = which === "const" ? [schema.const] : list as unknown[];
  if (which === "const" && Array.isArray(list)) {
    const c = JSON.stringify(schema.const);
    if (!list.some((v) => JSON.stringify(v) === c)) {
      cx.fail(`${path}/const`, "const is not among the enum values");
    }
  }
  const other = typeKeywords.find((k) => k !== "type");
  if (other) cx.fail(`${path}/${other}`, `"${other}" beside "${which}" is not supported`);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    values = values.filter((v) => types.some((t) => hasType(v, t)));
    if (values.length === 0) cx.fail(`${path}/type`, `no ${which} value is of this type`);
  }
  const alts = values.map((v, i) =>
    literal(cx, v, `${path}/${which}${which === "enum" ? `/${i}` : ""}`)
  );
  return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
}

/** The GBNF literal of JSON `value`. */
function literal(cx: SchemaContext, value: unknown, path: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) cx.fail(path, "not a JSON value");
  return gbnfLiteral(text);
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
