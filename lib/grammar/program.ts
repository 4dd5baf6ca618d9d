/**
 * A grammar compiled for the matcher: rules of alternatives of elements over bytes. Both the
 * GBNF parser and the JSON-Schema converter build the syntax tree of {@link Node}s; lowering
 * turns character classes into UTF-8 byte-range sequences, repetitions into right-recursive
 * helper rules, and refuses left recursion (the matcher could not expand it).
 * @module
 */

import { GrammarError } from "./error.ts";
import { complementRanges, normalizeRanges, type Range, utf8Sequences } from "./utf8.ts";

/** Where a node came from, for errors. */
export interface Where {
  line: number;
  col: number;
}

/** A grammar expression. */
export type Node =
  | { t: "seq"; items: Node[] }
  | { t: "alt"; alts: Node[] }
  | { t: "bytes"; bytes: Uint8Array }
  | { t: "class"; ranges: Range[]; negated: boolean }
  | { t: "ref"; name: string; at: Where }
  | { t: "rep"; item: Node; min: number; max: number };

/** Element kinds of {@link Program.kind}. */
export const END = 0, BYTES = 1, REF = 2;

/**
 * The compiled form. Element `i` is `kind[i]` with argument `arg[i]`: END closes an
 * alternative, BYTES matches one byte of set `arg` (`sets[arg * 256 + byte]` is 1 when it
 * does), REF expands rule `arg`.
 */
export interface Program {
  readonly kind: Int32Array;
  readonly arg: Int32Array;
  /** Start element of every alternative of every rule. */
  readonly alts: readonly Int32Array[];
  readonly sets: Uint8Array;
  readonly names: readonly string[];
  readonly root: number;
}

/** Builds a {@link Program} from named rules. `at` locates a rule's definition for errors. */
export function lower(
  rules: ReadonlyMap<string, { node: Node; at: Where }>,
  rootName: string,
): Program {
  if (!rules.has(rootName)) throw new GrammarError(`the grammar has no rule "${rootName}"`);
  const names: string[] = [];
  const ids = new Map<string, number>();
  for (const name of rules.keys()) ids.set(name, names.push(name) - 1);
  const ruleAlts: number[][][] = []; // rule → alternatives → elements as [kind, arg] pairs
  const setIds = new Map<string, number>();
  const sets: Uint8Array[] = [];
  const helpers = new Map<string, number>(); // structural key → helper rule id

  const setOf = (lo: number, hi: number): number => {
    const key = `${lo}-${hi}`;
    let id = setIds.get(key);
    if (id === undefined) {
      const s = new Uint8Array(256);
      s.fill(1, lo, hi + 1);
      id = sets.push(s) - 1;
      setIds.set(key, id);
    }
    return id;
  };
  const setFromFlags = (flags: Uint8Array): number => {
    const key = Array.from(flags).join("");
    let id = setIds.get(key);
    if (id === undefined) {
      id = sets.push(flags) - 1;
      setIds.set(key, id);
    }
    return id;
  };
  const newRule = (name: string, alts: number[][]): number => {
    const id = names.push(name) - 1;
    ruleAlts[id] = alts;
    return id;
  };
  const helper = (key: string, name: string, make: () => number[][]): number => {
    let id = helpers.get(key);
    if (id === undefined) {
      id = names.push(name) - 1;
      helpers.set(key, id);
      ruleAlts[id] = make();
    }
    return id;
  };

  /** A character class as a helper rule (or one BYTES element when it is ASCII only). */
  const classElements = (ranges: Range[], negated: boolean): number[] => {
    let cps = normalizeRanges(ranges);
    if (negated) cps = complementRanges(cps);
    if (cps.length === 0) throw new GrammarError("a character class matches nothing");
    const seqs = cps.flatMap(([lo, hi]) => utf8Sequences(lo, hi));
    const single = new Uint8Array(256);
    const multi: Range[][] = [];
    for (const s of seqs) {
      if (s.length === 1) single.fill(1, s[0][0], s[0][1] + 1);
      else multi.push(s);
    }
    const singleSet = single.includes(1) ? setFromFlags(single) : -1;
    if (multi.length === 0) return [BYTES, singleSet];
    const key = "class:" + cps.map(([a, b]) => `${a}-${b}`).join(",");
    const id = helper(key, `[class ${names.length}]`, () => {
      const alts = multi.map((s) => [...s.flatMap(([lo, hi]) => [BYTES, setOf(lo, hi)]), END, 0]);
      if (singleSet >= 0) alts.unshift([BYTES, singleSet, END, 0]);
      return alts;
    });
    return [REF, id];
  };

  const refOf = (name: string, at: Where): number => {
    const id = ids.get(name);
    if (id === undefined) {
      throw new GrammarError(`line ${at.line}:${at.col}: undefined rule "${name}"`);
    }
    return id;
  };

  /** Elements of `node` appended to `out`; `ctx` names helper rules. */
  const emit = (node: Node, out: number[], ctx: string): void => {
    switch (node.t) {
      case "seq":
        for (const n of node.items) emit(n, out, ctx);
        return;
      case "bytes":
        for (const b of node.bytes) out.push(BYTES, setOf(b, b));
        return;
      case "class":
        out.push(...classElements(node.ranges, node.negated));
        return;
      case "ref":
        out.push(REF, refOf(node.name, node.at));
        return;
      case "alt": {
        if (node.alts.length === 1) return emit(node.alts[0], out, ctx);
        const id = newRule(`${ctx}-${names.length}`, []);
        ruleAlts[id] = node.alts.map((a) => {
          const e: number[] = [];
          emit(a, e, ctx);
          return [...e, END, 0];
        });
        out.push(REF, id);
        return;
      }
      case "rep": {
        const { min, max } = node;
        const item: number[] = [];
        emit(node.item, item, ctx);
        // Copies of a long item go through one rule.
        let one = item;
        if (item.length > 2 && (min > 1 || max > min)) {
          const id = newRule(`${ctx}-${names.length}`, [[...item, END, 0]]);
          one = [REF, id];
        }
        for (let i = 0; i < min; i++) out.push(...one);
        if (max === Infinity) {
          // star ::= item star | (empty): the recursive call is a tail call, the stack stays flat
          const id = newRule(`${ctx}-${names.length}`, []);
          ruleAlts[id] = [[...one, REF, id, END, 0], [END, 0]];
          out.push(REF, id);
        } else if (max > min) {
          // opt_k ::= item opt_(k-1) | (empty)
          let prev = -1;
          for (let k = 1; k <= max - min; k++) {
            const id = newRule(`${ctx}-${names.length}`, []);
            ruleAlts[id] = [prev < 0 ? [...one, END, 0] : [...one, REF, prev, END, 0], [END, 0]];
            prev = id;
          }
          out.push(REF, prev);
        }
        return;
      }
    }
  };

  for (const [name, { node }] of rules) {
    const id = ids.get(name)!;
    const alts = node.t === "alt" ? node.alts : [node];
    ruleAlts[id] = alts.map((a) => {
      const e: number[] = [];
      emit(a, e, name);
      return [...e, END, 0];
    });
  }

  // Flatten.
  let total = 0;
  for (const alts of ruleAlts) for (const a of alts) total += a.length / 2;
  const kind = new Int32Array(total), arg = new Int32Array(total);
  const starts: Int32Array[] = [];
  let p = 0;
  for (let r = 0; r < ruleAlts.length; r++) {
    starts[r] = new Int32Array(ruleAlts[r].length);
    ruleAlts[r].forEach((a, i) => {
      starts[r][i] = p;
      for (let j = 0; j < a.length; j += 2) (kind[p] = a[j], arg[p] = a[j + 1], p++);
    });
  }
  const flat = new Uint8Array(sets.length * 256);
  sets.forEach((s, i) => flat.set(s, i * 256));
  const program: Program = {
    kind,
    arg,
    alts: starts,
    sets: flat,
    names,
    root: ids.get(rootName)!,
  };
  checkLeftRecursion(program, rules);
  return program;
}

/** Rules that can match the empty string. */
function nullableRules(p: Program): boolean[] {
  const nullable = new Array<boolean>(p.alts.length).fill(false);
  for (let changed = true; changed;) {
    changed = false;
    for (let r = 0; r < p.alts.length; r++) {
      if (nullable[r]) continue;
      for (const start of p.alts[r]) {
        let i = start;
        while (p.kind[i] === REF && nullable[p.arg[i]]) i++;
        if (p.kind[i] === END) {
          nullable[r] = true;
          changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

/**
 * Refuses a rule that can reach itself without consuming a byte: expanding it would never end.
 * The message names a named rule on the cycle where there is one.
 */
function checkLeftRecursion(
  p: Program,
  rules: ReadonlyMap<string, { node: Node; at: Where }>,
): void {
  const nullable = nullableRules(p);
  const left: number[][] = p.alts.map((alts) => {
    const out: number[] = [];
    for (const start of alts) {
      for (let i = start; p.kind[i] === REF; i++) {
        out.push(p.arg[i]);
        if (!nullable[p.arg[i]]) break;
      }
    }
    return out;
  });
  const state = new Uint8Array(p.alts.length); // 0 new, 1 on the path, 2 done
  const path: number[] = [];
  const visit = (r: number): void => {
    state[r] = 1;
    path.push(r);
    for (const s of left[r]) {
      if (state[s] === 1) {
        const cycle = path.slice(path.indexOf(s));
        const named = cycle.map((c) => p.names[c]).filter((n) => rules.has(n));
        const at = named.length ? rules.get(named[0])!.at : undefined;
        throw new GrammarError(
          `${at ? `line ${at.line}:${at.col}: ` : ""}left recursion through rule "${
            named[0] ?? p.names[s]
          }" (it can reach itself without matching a character; a repetition of something ` +
            `that can be empty does too)`,
        );
      }
      if (state[s] === 0) visit(s);
    }
    path.pop();
    state[r] = 2;
  };
  for (let r = 0; r < p.alts.length; r++) if (state[r] === 0) visit(r);
}
