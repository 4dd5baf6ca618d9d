/**
 * The parser of llama.cpp's GBNF grammar format: `name ::= alternatives` rules, `#` comments,
 * string literals and character classes with escapes (`\n`, `\t`, `\r`, `\\`, `\"`, `\[`, `\]`,
 * `\xHH`, `\uHHHH`, `\UHHHHHHHH`), negated classes `[^…]`, `.` (any character), groups,
 * repetition (`*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`) and rule references. Errors name
 * `line:col`.
 *
 * Newlines: as in llama.cpp, they separate rules, and continue a rule inside parentheses and
 * after `|`; in addition a line that does not start a new `name ::=` rule continues the one
 * before (llama.cpp would refuse it).
 * @module
 */

import { GrammarError } from "./error.ts";
import type { Node, Where } from "./program.ts";
import type { Range } from "./utf8.ts";

const utf8 = new TextEncoder();

/** Most repetitions of `{m,n}` (larger bounds would build huge grammars). */
const MAX_REPEAT = 100_000;

const isNameChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_-]/.test(c);

/** The rules of a GBNF text, in order of definition. */
export function parseGbnf(text: string): Map<string, { node: Node; at: Where }> {
  return new Parser(text).parse();
}

class Parser {
  #src: string;
  #pos = 0;
  #depth = 0; // parentheses open
  #rules = new Map<string, { node: Node; at: Where }>();

  #lineStarts: number[] = [0];

  constructor(src: string) {
    this.#src = src;
    for (let i = src.indexOf("\n"); i >= 0; i = src.indexOf("\n", i + 1)) {
      this.#lineStarts.push(i + 1);
    }
  }

  #where(pos = this.#pos): Where {
    const starts = this.#lineStarts;
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: pos - starts[lo] + 1 };
  }

  #fail(message: string, pos = this.#pos): never {
    const { line, col } = this.#where(pos);
    throw new GrammarError(`line ${line}:${col}: ${message}`);
  }

  /** Skips spaces and comments; newlines too when `newlines`. */
  #space(newlines: boolean): void {
    const s = this.#src;
    while (this.#pos < s.length) {
      const c = s[this.#pos];
      if (c === " " || c === "\t" || c === "\r") this.#pos++;
      else if (c === "#") { while (this.#pos < s.length && s[this.#pos] !== "\n") this.#pos++; }
      else if (c === "\n" && newlines) this.#pos++;
      else break;
    }
  }

  /** After a newline at the top level of a rule: does a new rule (or the end) follow? */
  #ruleEnds(): boolean {
    const save = this.#pos;
    this.#space(true);
    const s = this.#src;
    let ends = this.#pos >= s.length;
    if (!ends) {
      let p = this.#pos;
      while (isNameChar(s[p])) p++;
      if (p > this.#pos) {
        while (s[p] === " " || s[p] === "\t") p++;
        ends = s.startsWith("::=", p);
      }
    }
    this.#pos = save;
    return ends;
  }

  parse(): Map<string, { node: Node; at: Where }> {
    const s = this.#src;
    for (;;) {
      this.#space(true);
      if (this.#pos >= s.length) break;
      const start = this.#pos;
      const name = this.#name();
      if (!name) this.#fail(`expected a rule name, found ${JSON.stringify(s[this.#pos])}`);
      this.#space(false);
      if (!s.startsWith("::=", this.#pos)) this.#fail(`expected "::=" after rule name "${name}"`);
      this.#pos += 3;
      this.#space(true);
      if (this.#rules.has(name)) this.#fail(`rule "${name}" is defined twice`, start);
      const at = this.#where(start);
      const node = this.#alternatives();
      this.#rules.set(name, { node, at });
      const c = s[this.#pos];
      if (c === ")") this.#fail(`unmatched ")"`);
      if (this.#pos < s.length && c !== "\n") {
        this.#fail(`unexpected ${JSON.stringify(c)}`);
      }
    }
    if (this.#rules.size === 0) throw new GrammarError("the grammar has no rules");
    return this.#rules;
  }

  #name(): string {
    const s = this.#src, start = this.#pos;
    while (isNameChar(s[this.#pos])) this.#pos++;
    return s.slice(start, this.#pos);
  }

  #alternatives(): Node {
    const alts = [this.#sequence()];
    while (this.#src[this.#pos] === "|") {
      this.#pos++;
      this.#space(true);
      alts.push(this.#sequence());
    }
    return alts.length === 1 ? alts[0] : { t: "alt", alts };
  }

  #sequence(): Node {
    const items: Node[] = [];
    const s = this.#src;
    for (;;) {
      this.#space(this.#depth > 0);
      if (s[this.#pos] === "\n" && this.#depth === 0) {
        if (this.#ruleEnds()) return seq(items);
        this.#space(true);
      }
      const c = s[this.#pos];
      if (c === undefined || c === "|" || c === ")" || c === "\n") return seq(items);
      const atom = this.#atom();
      items.push(this.#postfix(atom));
    }
  }

  #atom(): Node {
    const s = this.#src, c = s[this.#pos], start = this.#pos;
    if (c === '"') {
      this.#pos++;
      const cps: number[] = [];
      while (s[this.#pos] !== '"') {
        if (this.#pos >= s.length || s[this.#pos] === "\n") {
          this.#fail("unterminated string", start);
        }
        cps.push(this.#char());
      }
      this.#pos++;
      return { t: "bytes", bytes: utf8.encode(String.fromCodePoint(...cps)) };
    }
    if (c === "[") {
      this.#pos++;
      const negated = s[this.#pos] === "^";
      if (negated) this.#pos++;
      const ranges: Range[] = [];
      while (s[this.#pos] !== "]") {
        if (this.#pos >= s.length) this.#fail("unterminated character class", start);
        const lo = this.#char();
        let hi = lo;
        if (s[this.#pos] === "-" && s[this.#pos + 1] !== "]" && this.#pos + 1 < s.length) {
          this.#pos++;
          hi = this.#char();
          if (hi < lo) this.#fail("character range is reversed", start);
        }
        ranges.push([lo, hi]);
      }
      this.#pos++;
      if (ranges.length === 0 && !negated) this.#fail("empty character class", start);
      return { t: "class", ranges, negated };
    }
    if (c === ".") {
      this.#pos++;
      return { t: "class", ranges: [], negated: true };
    }
    if (c === "(") {
      this.#pos++;
      this.#depth++;
      this.#space(true);
      const inner = this.#alternatives();
      if (s[this.#pos] !== ")") this.#fail(`expected ")"`, start);
      this.#pos++;
      this.#depth--;
      return inner;
    }
    if (c === "<" || (c === "!" && s[this.#pos + 1] === "<")) {
      this.#fail("token references (<…>) are not supported: write the text as a string");
    }
    if (isNameChar(c)) {
      const at = this.#where();
      const name = this.#name();
      return { t: "ref", name, at };
    }
    this.#fail(`unexpected ${JSON.stringify(c)}`);
  }

  #postfix(atom: Node): Node {
    const s = this.#src;
    for (;;) {
      const c = s[this.#pos];
      if (c === "*") (this.#pos++, atom = { t: "rep", item: atom, min: 0, max: Infinity });
      else if (c === "+") (this.#pos++, atom = { t: "rep", item: atom, min: 1, max: Infinity });
      else if (c === "?") (this.#pos++, atom = { t: "rep", item: atom, min: 0, max: 1 });
      else if (c === "{") {
        const start = this.#pos;
        const m = /^\{\s*(\d+)\s*(?:(,)\s*(\d*)\s*)?\}/.exec(s.slice(this.#pos, this.#pos + 40));
        if (!m) this.#fail("expected {m}, {m,} or {m,n}");
        const min = Number(m[1]);
        const max = m[2] ? (m[3] ? Number(m[3]) : Infinity) : min;
        if (max < min) this.#fail(`repetition {${m[1]},${m[3]}} has max < min`, start);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) {
          this.#fail(`repetition bound above ${MAX_REPEAT}`, start);
        }
        this.#pos += m[0].length;
        atom = { t: "rep", item: atom, min, max };
      } else return atom;
    }
  }

  /** One character of a literal or class, escapes decoded: its code point. */
  #char(): number {
    const s = this.#src, start = this.#pos;
    if (s[this.#pos] !== "\\") {
      const cp = s.codePointAt(this.#pos)!;
      this.#pos += cp > 0xffff ? 2 : 1;
      return cp;
    }
    const e = s[this.#pos + 1];
    this.#pos += 2;
    const simple: Record<string, number> = {
      n: 10,
      r: 13,
      t: 9,
      "\\": 92,
      '"': 34,
      "[": 91,
      "]": 93,
      "-": 45,
      "^": 94,
      "/": 47,
      "'": 39,
      "0": 0,
    };
    if (e in simple) return simple[e];
    const digits = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
    if (!digits) this.#fail(`unknown escape "\\${e ?? ""}"`, start);
    const hex = s.slice(this.#pos, this.#pos + digits);
    if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) this.#fail(`bad escape`, start);
    this.#pos += digits;
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      this.#fail(`escape \\${e}${hex} is not a Unicode scalar value`, start);
    }
    return cp;
  }
}

function seq(items: Node[]): Node {
  return items.length === 1 ? items[0] : { t: "seq", items };
}
