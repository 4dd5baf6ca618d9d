/**
 * JSON-Schema `pattern` → GBNF for the content of a JSON string: the generated strings are
 * whole matches of the pattern (a subset of what the unanchored pattern accepts), written as
 * JSON string content (`"` and `\` escaped, control characters as `\n`, `\t`… or left out).
 *
 * Supported (ECMAScript syntax, as JSON Schema specifies): literals, `.`, classes `[…]`
 * (ranges, negation, `\d \w \s` and their negations), escapes (`\t \n \r \f \v \0 \xHH \uHHHH
 * \u{…}`, escaped punctuation), groups `(…)`, `(?:…)`, `(?<name>…)`, alternation, quantifiers
 * `* + ? {n} {n,} {n,m}` (lazy ones too: same strings), `^` at the start and `$` at the end.
 * Refused with the reason: lookaround, backreferences, word boundaries, anchors elsewhere.
 * @module
 */

import { complementRanges, normalizeRanges, type Range } from "./utf8.ts";

const QUANTIFIER = /^\{(\d+)(,(\d*))?\}/;

/** Most repetitions a `{n,m}` may ask for. */
const MAX_REPEAT = 1000;

const DIGIT: Range[] = [[0x30, 0x39]];
const WORD: Range[] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: Range[] = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
const LINE_TERMINATORS: Range[] = [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]];

/** JSON's short escapes of control characters. */
const JSON_ESCAPES: Record<number, string> = { 8: "b", 9: "t", 10: "n", 12: "f", 13: "r" };

/** A pattern the converter cannot follow; `message` says why. */
export class PatternError extends Error {}

function hex(cp: number): string {
  return cp <= 0xffff
    ? "\\u" + cp.toString(16).padStart(4, "0")
    : "\\U" + cp.toString(16).padStart(8, "0");
}

/**
 * The GBNF of one character from the code points `ranges`, as JSON string content: a class of
 * the characters written raw, plus the escapes of `"`, `\` and the control characters JSON
 * writes as `\n`, `\t`, `\r`, `\b`, `\f` (other control characters are left out).
 */
export function jsonCharClass(ranges: readonly Range[]): string {
  const set = normalizeRanges(ranges);
  const alts: string[] = [];
  const has = (cp: number) => set.some(([lo, hi]) => lo <= cp && cp <= hi);
  // raw: the set minus controls, '"' and '\'
  const raw = complementRanges(normalizeRanges([
    ...complementRanges(set),
    [0, 0x1f],
    [0x22, 0x22],
    [0x5c, 0x5c],
  ]));
  if (raw.length) {
    alts.push(
      "[" + raw.map(([lo, hi]) => lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`).join("") + "]",
    );
  }
  if (has(0x22)) alts.push('"\\\\\\""');
  if (has(0x5c)) alts.push('"\\\\\\\\"');
  for (const [cp, e] of Object.entries(JSON_ESCAPES)) {
    if (has(Number(cp))) alts.push(`"\\\\${e}"`);
  }
  if (alts.length === 0) throw new PatternError("a character class matches nothing JSON can hold");
  return alts.length === 1 ? alts[0] : `( ${alts.join(" | ")} )`;
}

/** GBNF for whole matches of `pattern`, as JSON string content. Throws {@link PatternError}. */
export function patternToGbnf(pattern: string): string {
  return new RegexParser(pattern).parse();
}

class RegexParser {
  #src: string;
  #pos = 0;

  constructor(src: string) {
    this.#src = src;
  }

  #fail(message: string): never {
    throw new PatternError(`${message} at offset ${this.#pos}`);
  }

  parse(): string {
    if (this.#src.startsWith("^")) this.#pos++;
    const expr = this.#alternatives();
    if (this.#pos < this.#src.length) {
      this.#fail(`unexpected ${JSON.stringify(this.#src[this.#pos])}`);
    }
    return expr;
  }

  #alternatives(): string {
    const alts = [this.#sequence()];
    while (this.#src[this.#pos] === "|") {
      this.#pos++;
      alts.push(this.#sequence());
    }
    return alts.length === 1 ? alts[0] : `( ${alts.map((a) => a || '""').join(" | ")} )`;
  }

  #sequence(): string {
    const items: string[] = [];
    const s = this.#src;
    for (;;) {
      const c = s[this.#pos];
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "$") {
        if (this.#pos !== s.length - 1) this.#fail("$ is supported at the end of the pattern only");
        this.#pos++;
        break;
      }
      if (c === "^") this.#fail("^ is supported at the start of the pattern only");
      items.push(this.#quantified(this.#atom()));
    }
    return items.join(" ");
  }

  #atom(): string {
    const s = this.#src, c = s[this.#pos];
    if (c === "(") {
      this.#pos++;
      if (s.startsWith("?:", this.#pos)) this.#pos += 2;
      else if (s.startsWith("?<", this.#pos) && !/^\?<[=!]/.test(s.slice(this.#pos))) {
        const close = s.indexOf(">", this.#pos);
        if (close < 0) this.#fail("unterminated group name");
        this.#pos = close + 1;
      } else if (c === "(" && s[this.#pos] === "?") this.#fail("lookaround is not supported");
      const inner = this.#alternatives();
      if (s[this.#pos] !== ")") this.#fail('expected ")"');
      this.#pos++;
      return `( ${inner || '""'} )`;
    }
    if (c === "[") return jsonCharClass(this.#class());
    if (c === ".") {
      this.#pos++;
      return jsonCharClass(complementRanges(normalizeRanges(LINE_TERMINATORS)));
    }
    if (c === "*" || c === "+" || c === "?" || (c === "{" && QUANTIFIER.test(s.slice(this.#pos)))) {
      this.#fail("nothing to repeat");
    }
    if (c === "\\") return jsonCharClass(this.#escape(false));
    const cp = s.codePointAt(this.#pos)!;
    this.#pos += cp > 0xffff ? 2 : 1;
    return jsonCharClass([[cp, cp]]);
  }

  #quantified(atom: string): string {
    const s = this.#src;
    let min: number, max: number;
    const c = s[this.#pos];
    if (c === "*") (min = 0, max = Infinity, this.#pos++);
    else if (c === "+") (min = 1, max = Infinity, this.#pos++);
    else if (c === "?") (min = 0, max = 1, this.#pos++);
    else {
      const m = QUANTIFIER.exec(s.slice(this.#pos));
      if (!m) return atom;
      min = Number(m[1]);
      max = m[2] ? (m[3] ? Number(m[3]) : Infinity) : min;
      if (max < min) this.#fail("numbers out of order in {} quantifier");
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) {
        this.#fail(`repetition above ${MAX_REPEAT}`);
      }
      this.#pos += m[0].length;
    }
    if (s[this.#pos] === "?") this.#pos++; // lazy: the same strings
    const next = s[this.#pos];
    if (next === "*" || next === "+" || next === "?" || QUANTIFIER.test(s.slice(this.#pos))) {
      this.#fail("nothing to repeat");
    }
    const group = atom.startsWith("(") || !atom.includes(" ") ? atom : `( ${atom} )`;
    return `${group}{${min},${max === Infinity ? "" : max}}`;
  }

  /** A class `[…]`: its code-point ranges. */
  #class(): Range[] {
    const s = this.#src;
    this.#pos++; // [
    const negated = s[this.#pos] === "^";
    if (negated) this.#pos++;
    const ranges: Range[] = [];
    while (s[this.#pos] !== "]") {
      if (this.#pos >= s.length) this.#fail("unterminated character class");
      const lo = this.#classAtom();
      if (s[this.#pos] === "-" && s[this.#pos + 1] !== "]" && this.#pos + 1 < s.length) {
        this.#pos++;
        const hi = this.#classAtom();
        if (lo.length !== 1 || hi.length !== 1 || lo[0][0] !== lo[0][1] || hi[0][0] !== hi[0][1]) {
          this.#fail("a class escape cannot bound a range");
        }
        if (hi[0][0] < lo[0][0]) this.#fail("range out of order in character class");
        ranges.push([lo[0][0], hi[0][0]]);
      } else ranges.push(...lo);
    }
    this.#pos++; // ]
    const set = normalizeRanges(ranges);
    return negated ? complementRanges(set) : set;
  }

  #classAtom(): Range[] {
    const s = this.#src;
    if (s[this.#pos] === "\\") return this.#escape(true);
    const cp = s.codePointAt(this.#pos)!;
    this.#pos += cp > 0xffff ? 2 : 1;
    return [[cp, cp]];
  }

  /** An escape (the backslash at the position): its code-point ranges. */
  #escape(inClass: boolean): Range[] {
    const s = this.#src;
    const e = s[this.#pos + 1];
    if (e === undefined) this.#fail("\\ at the end of the pattern");
    this.#pos += 2;
    const one = (cp: number): Range[] => [[cp, cp]];
    switch (e) {
      case "d":
        return DIGIT;
      case "D":
        return complementRanges(DIGIT);
      case "w":
        return WORD;
      case "W":
        return complementRanges(WORD);
      case "s":
        return SPACE;
      case "S":
        return complementRanges(normalizeRanges(SPACE));
      case "t":
        return one(9);
      case "n":
        return one(10);
      case "r":
        return one(13);
      case "f":
        return one(12);
      case "v":
        return one(11);
      case "0":
        if (/[0-9]/.test(s[this.#pos] ?? "")) this.#fail("octal escapes are not supported");
        return one(0);
      case "b":
        if (inClass) return one(8);
        return this.#fail("word boundaries (\\b) are not supported");
      case "B":
        return this.#fail("word boundaries (\\B) are not supported");
      case "x": {
        const h = s.slice(this.#pos, this.#pos + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) this.#fail("bad \\x escape");
        this.#pos += 2;
        return one(parseInt(h, 16));
      }
      case "u": {
        if (s[this.#pos] === "{") {
          const close = s.indexOf("}", this.#pos);
          const h = s.slice(this.#pos + 1, close);
          if (close < 0 || !/^[0-9a-fA-F]{1,6}$/.test(h) || parseInt(h, 16) > 0x10ffff) {
            this.#fail("bad \\u{…} escape");
          }
          this.#pos = close + 1;
          return one(parseInt(h, 16));
        }
        const h = s.slice(this.#pos, this.#pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) this.#fail("bad \\u escape");
        this.#pos += 4;
        return one(parseInt(h, 16));
      }
      case "c":
      case "p":
      case "P":
      case "k":
        return this.#fail(`\\${e} escapes are not supported`);
      default:
        if (/[1-9]/.test(e)) this.#fail("backreferences are not supported");
        if (/[A-Za-z]/.test(e)) this.#fail(`unknown escape \\${e}`);
        return one(e.codePointAt(0)!);
    }
  }
}
