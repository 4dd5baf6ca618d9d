/**
 * A small WAT preprocessor for the kernels' build: functions marked with a `;; @inline` comment
 * just before their `(func` are substituted at every call site and then dropped.
 *
 * Why: V8's default dynamic tiering compiles the kernels with Liftoff first and, when it tiers
 * them up, does not inline small wasm calls reliably; a call per eight int8 dots made the q8
 * kernel twice as slow as the same code written out by hand. Inlining in the build keeps the
 * source readable (one helper, many call sites) and the module fast in every tier.
 *
 * Semantics are exactly those of the call: each call becomes
 * `(block (result T) (local.set $p' arg)… body…)`, every parameter and local of the helper
 * renamed to a fresh local of the caller, so arguments are evaluated once, in order. A helper
 * may not use `return` (it would return from the caller); calls inside helpers are inlined too.
 *
 * @module
 */

/** An S-expression: an atom (keyword, name, number, string) or a list. */
export type Node = string | List;
/** A list of S-expressions, with the marks its comments gave it. */
export interface List extends Array<Node> {
  /** Set on a `(func …)` preceded by a `;; @inline` comment. */
  inline?: boolean;
  /** The parameters named by a `;; @weights $a $b` comment before a `(func …)`. */
  weights?: string[];
}

/**
 * Parses WAT text into S-expressions, dropping comments (a `;; @inline` or `;; @weights …`
 * comment marks the next list).
 */
export function parseWat(src: string): List {
  const root: List = [];
  const stack: List[] = [root];
  let mark = false;
  let weights: string[] | undefined;
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ";" && src[i + 1] === ";") {
      const end = src.indexOf("\n", i);
      const text = src.slice(i, end < 0 ? src.length : end);
      if (/^;;\s*@inline\b/.test(text)) mark = true;
      const w = /^;;\s*@weights((?:\s+\$[\w.]+)+)\s*$/.exec(text);
      if (w) weights = w[1].trim().split(/\s+/);
      i = end < 0 ? src.length : end + 1;
    } else if (c === "(" && src[i + 1] === ";") {
      let depth = 0;
      do {
        if (src.startsWith("(;", i)) depth++, i += 2;
        else if (src.startsWith(";)", i)) depth--, i += 2;
        else if (i >= src.length) throw new Error("kernels.wat: unterminated block comment");
        else i++;
      } while (depth > 0);
    } else if (c === "(") {
      const list: List = [];
      if (mark) list.inline = true, mark = false;
      if (weights) list.weights = weights, weights = undefined;
      stack[stack.length - 1].push(list);
      stack.push(list);
      i++;
    } else if (c === ")") {
      if (stack.length < 2) throw new Error(`kernels.wat: unbalanced ")" at offset ${i}`);
      stack.pop();
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (src[j] !== '"') {
        if (j >= src.length) throw new Error("kernels.wat: unterminated string");
        j += src[j] === "\\" ? 2 : 1;
      }
      stack[stack.length - 1].push(src.slice(i, j + 1));
      i = j + 1;
    } else {
      let j = i;
      while (j < src.length && !/[\s()]/.test(src[j]) && !src.startsWith(";;", j)) j++;
      stack[stack.length - 1].push(src.slice(i, j));
      i = j;
    }
  }
  if (stack.length !== 1) throw new Error("kernels.wat: unbalanced parentheses");
  return root;
}

/** WAT text of S-expressions. */
export function emitWat(n: Node): string {
  return typeof n === "string" ? n : `(${n.map(emitWat).join(" ")})`;
}

interface Helper {
  name: string;
  /** Parameter and local names with their types, parameters first. */
  params: [string, string][];
  locals: [string, string][];
  result: string[];
  body: Node[];
}

/** `(param $a i32)`, `(local $a v128)`: one named declaration each (the style of kernels.wat). */
function declarations(fn: List, kind: string, name: string): [string, string][] {
  const out: [string, string][] = [];
  for (const d of fn) {
    if (!Array.isArray(d) || d[0] !== kind) continue;
    if (d.length !== 3 || typeof d[1] !== "string" || !d[1].startsWith("$")) {
      throw new Error(`kernels.wat: @inline ${name}: write each ${kind} as (${kind} $name type)`);
    }
    out.push([d[1], d[2] as string]);
  }
  return out;
}

function helperOf(fn: List): Helper {
  const name = fn[1];
  if (typeof name !== "string" || !name.startsWith("$")) {
    throw new Error("kernels.wat: an @inline function needs a $name");
  }
  const head = new Set(["param", "result", "local", "export", "type"]);
  const body = fn.slice(2).filter((n) => !(Array.isArray(n) && head.has(n[0] as string)));
  if (fn.some((n) => Array.isArray(n) && n[0] === "export")) {
    throw new Error(`kernels.wat: @inline ${name} is exported`);
  }
  const walk = (n: Node) => {
    if (n === "return" || (Array.isArray(n) && n[0] === "return")) {
      throw new Error(`kernels.wat: @inline ${name} uses return`);
    }
    if (Array.isArray(n)) n.forEach(walk);
  };
  body.forEach(walk);
  const result = fn.filter((n): n is List => Array.isArray(n) && n[0] === "result")
    .flatMap((n) => n.slice(1) as string[]);
  return {
    name,
    params: declarations(fn, "param", name),
    locals: declarations(fn, "local", name),
    result,
    body,
  };
}

/** Expands every call of an `@inline` helper in `src`; returns WAT text for the assembler. */
export function inlineWat(src: string): string {
  return inlineTree(parseWat(src)).map(emitWat).join("\n") + "\n";
}

/**
 * Expands every call of an `@inline` helper in parsed WAT (`parseWat`); returns the top-level
 * S-expressions, the module's functions keeping their `@weights` marks.
 */
export function inlineTree(root: List): List {
  const module = root.find((n): n is List => Array.isArray(n) && n[0] === "module");
  if (!module) throw new Error("kernels.wat: no (module …)");
  const helpers = new Map<string, Helper>();
  for (const n of module) {
    if (Array.isArray(n) && n[0] === "func" && n.inline) {
      const h = helperOf(n);
      helpers.set(h.name, h);
    }
  }
  let serial = 0;
  const expand = (n: Node, added: [string, string][], depth: number): Node => {
    if (typeof n === "string") return n;
    const kids = n.map((c) => expand(c, added, depth));
    const h = kids[0] === "call" ? helpers.get(kids[1] as string) : undefined;
    if (!h) return kids;
    if (depth > 16) throw new Error(`kernels.wat: @inline ${h.name} calls itself`);
    const args = kids.slice(2);
    if (args.length !== h.params.length) {
      throw new Error(
        `kernels.wat: call ${h.name} has ${args.length} arguments, wants ${h.params.length}`,
      );
    }
    const id = serial++;
    const rename = new Map<string, string>();
    for (const [v, type] of [...h.params, ...h.locals]) {
      const fresh = `${v}__${h.name.slice(1)}${id}`;
      rename.set(v, fresh);
      added.push([fresh, type]);
    }
    const subst = (b: Node): Node => {
      if (typeof b === "string") return b;
      if (
        b.length === 2 && /^local\.(get|set|tee)$/.test(b[0] as string) &&
        rename.has(b[1] as string)
      ) {
        return [b[0], rename.get(b[1] as string)!];
      }
      if (
        b.length >= 2 && /^local\.(set|tee)$/.test(b[0] as string) && rename.has(b[1] as string)
      ) {
        return [b[0], rename.get(b[1] as string)!, ...b.slice(2).map(subst)];
      }
      return b.map(subst);
    };
    const sets: Node[] = h.params.map(([v], k) => ["local.set", rename.get(v)!, args[k]]);
    const body = h.body.map(subst).map((b) => expand(b, added, depth + 1));
    const block: List = ["block"];
    if (h.result.length) block.push(["result", ...h.result]);
    return [...block, ...sets, ...body];
  };
  const out: List = ["module"];
  for (const n of module.slice(1)) {
    if (!Array.isArray(n) || n[0] !== "func") {
      out.push(n);
      continue;
    }
    if (n.inline) continue;
    const added: [string, string][] = [];
    const head = new Set(["param", "result", "local", "export", "type"]);
    let k = 1;
    while (k < n.length && (typeof n[k] === "string" || head.has((n[k] as List)[0] as string))) k++;
    const rest = n.slice(k).map((b) => expand(b, added, 0));
    const fn: List = [...n.slice(0, k), ...added.map(([v, t]): List => ["local", v, t]), ...rest];
    if (n.weights) fn.weights = n.weights;
    out.push(fn);
  }
  const leftover = emitWat(out).match(/\(call (\$[\w.]+)/g)?.find((c) => helpers.has(c.slice(6)));
  if (leftover) throw new Error(`kernels.wat: ${leftover} was not inlined`);
  return [...root.filter((n) => n !== module), out];
}
