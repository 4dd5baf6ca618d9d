/**
 * JSON Schema arrays as GBNF: tuples (`prefixItems`, or draft 4–7 `items` arrays), the items
 * after them, and `minItems` / `maxItems`.
 * @module
 */

import { count, type SchemaContext } from "./_schema_rules.ts";

/** `type: "array"` with its prefix items, items and counts. */
export function arrayRule(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  path: string,
  hint: string,
): string {
  let prefix: unknown[] = [];
  let tail: unknown;
  let tailPath: string;
  if (schema.uniqueItems !== undefined && schema.uniqueItems !== false) {
    cx.fail(`${path}/uniqueItems`, "uniqueItems is not supported");
  }
  if (schema.prefixItems !== undefined) {
    if (!Array.isArray(schema.prefixItems)) {
      cx.fail(`${path}/prefixItems`, "prefixItems must be an array");
    }
    prefix = schema.prefixItems;
    tail = schema.items ?? true;
    tailPath = `${path}/items`;
    if ("additionalItems" in schema) {
      cx.fail(
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
  const min = count(cx, schema, "minItems", path) ?? 0;
  const max = count(cx, schema, "maxItems", path) ?? Infinity;
  const p = prefix.length;
  const most = tail === false ? Math.min(max, p) : max;
  if (min > most) {
    cx.fail(`${path}/minItems`, `minItems ${min} is more than the items allow (${most})`);
  }
  const ws = cx.use("ws");
  const elems = prefix.map((s, i) =>
    cx.visit(s, `${path}/${schema.prefixItems ? "prefixItems" : "items"}/${i}`, `${hint}-${i}`)
  );
  const item = tail === false || most <= p ? "" : cx.visit(tail, tailPath, `${hint}-item`);
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
      const inner = `${item} ${ws} ( "," ${ws} ${item} ${ws} )${bound(Math.max(0, a - 1), b - 1)}`;
      return a >= 1 ? inner : `( ${inner} )?`;
    }
    return `( "," ${ws} ${item} ${ws} )${bound(a, b)}`;
  };
  return `"[" ${ws} ${content(0)} "]"`;
}
