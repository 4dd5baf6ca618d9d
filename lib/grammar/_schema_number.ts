/**
 * JSON Schema numbers and integers as GBNF: `minimum` / `maximum` / `exclusive*` exact on
 * integers, moved inward to whole numbers on `number` (see `json_schema.ts`), and the digit-range
 * rules that spell a range of whole numbers.
 * @module
 */

import { NUMBER_KEYWORDS, type SchemaContext } from "./_schema_rules.ts";

/** `type: "number"` or `"integer"` with its bounds. */
export function numberRule(
  cx: SchemaContext,
  schema: Record<string, unknown>,
  path: string,
  type: string,
): string {
  if (schema.format !== undefined) {
    // numeric formats (int32, float…) of OpenAPI / ajv-formats would bound the value
    cx.fail(
      `${path}/format`,
      `unsupported format ${JSON.stringify(schema.format)} on type ${type}`,
    );
  }
  const bounded = NUMBER_KEYWORDS.filter((k) => schema[k] !== undefined);
  if (bounded.length === 0) return cx.use(type === "integer" ? "json-integer" : "json-number");
  const num = (k: string): number | boolean | undefined => {
    const v = schema[k];
    if (v === undefined) return undefined;
    if (typeof v === "boolean" && (k === "exclusiveMinimum" || k === "exclusiveMaximum")) {
      return v;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      cx.fail(`${path}/${k}`, `${k} must be a number`);
    }
    return v;
  };
  const min = num("minimum"), max = num("maximum");
  const emin = num("exclusiveMinimum"), emax = num("exclusiveMaximum");
  if (
    (emin === true && typeof min !== "number") || (emax === true && typeof max !== "number")
  ) {
    cx.fail(
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
  if (lo > cap || hi < -cap) cx.fail(where, "bound beyond the 16 digits generated");
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
  if (alts.length === 0) cx.fail(where, "no value lies within the bounds");
  return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
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
