/**
 * JSON Schema objects as GBNF: the declared properties in declared order, optional ones
 * skippable, or (without `properties`) any object, `{}`, or a map of `additionalProperties`.
 * @module
 */

import { gbnfLiteral, isObject, type SchemaContext } from "./_schema_rules.ts";

/** `type: "object"` with `properties`, `required` and `additionalProperties`. */
export function objectRule(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  path: string,
  hint: string,
): string {
  const props = schema.properties ?? {};
  if (!isObject(props)) cx.fail(`${path}/properties`, "properties must be an object");
  const required = schema.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
    cx.fail(`${path}/required`, "required must be an array of strings");
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
    cx.fail(`${path}/additionalProperties`, "additionalProperties must be a schema");
  }
  const ws = cx.use("ws");
  if (entries.length === 0) {
    if (ap === false) return `"{" ${ws} "}"`;
    if (ap === undefined || ap === true) return cx.use("json-object");
    const v = cx.visit(ap, `${path}/additionalProperties`, `${hint}-value`);
    const kv = `${cx.use("json-string")} ${ws} ":" ${ws} ${v} ${ws}`;
    return `"{" ${ws} ( ${kv} ( "," ${ws} ${kv} )* )? "}"`;
  }
  const req = new Set(required as string[]);
  const kvs = entries.map(([k, v, p]) =>
    cx.rule(
      `${hint}-${k}-kv`,
      `${gbnfLiteral(JSON.stringify(k))} ${ws} ":" ${ws} ${cx.visit(v, p, `${hint}-${k}`)}`,
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
    rest[i] = body === "" ? "" : cx.rule(`${hint}-rest-${i}`, body);
  }
  return `"{" ${ws} ${choices(0, false)} "}"`;
}
