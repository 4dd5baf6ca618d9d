/**
 * JSON Schema strings as GBNF: `pattern` (through `regex.ts`), `format`, and `minLength` /
 * `maxLength`.
 * @module
 */

import { PatternError, patternToGbnf } from "./regex.ts";
import { count, FORMATS, type SchemaContext } from "./_schema_rules.ts";

/** `type: "string"` with its pattern, format or lengths (one of them). */
export function stringRule(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  path: string,
): string {
  const min = count(cx, schema, "minLength", path);
  const max = count(cx, schema, "maxLength", path);
  const format = schema.format;
  if (schema.pattern !== undefined) {
    const pattern = schema.pattern;
    if (typeof pattern !== "string") cx.fail(`${path}/pattern`, "pattern must be a string");
    if (format !== undefined || min !== undefined || max !== undefined) {
      cx.fail(
        `${path}/pattern`,
        "pattern beside format, minLength or maxLength is not supported",
      );
    }
    try {
      return `"\\"" ${patternToGbnf(pattern)} "\\""`;
    } catch (e) {
      if (e instanceof PatternError) {
        cx.fail(`${path}/pattern`, `${e.message} in ${JSON.stringify(pattern)}`);
      }
      throw e;
    }
  }
  if (format !== undefined) {
    if (typeof format !== "string" || !FORMATS.has(format)) {
      cx.fail(
        `${path}/format`,
        `unsupported format ${JSON.stringify(format)} (supported: ${[...FORMATS].join(", ")})`,
      );
    }
    if (min !== undefined || max !== undefined) {
      cx.fail(`${path}/format`, "format beside minLength/maxLength is not supported");
    }
    return `"\\"" ${cx.use(format)} "\\""`;
  }
  if (min === undefined && max === undefined) return cx.use("json-string");
  if ((min ?? 0) > (max ?? Infinity)) {
    cx.fail(`${path}/minLength`, "minLength is above maxLength");
  }
  return `"\\"" ${cx.use("json-char")}{${min ?? 0},${max ?? ""}} "\\""`;
}
