/**
 * The second build of the kernels, for weights beyond one 32-bit memory: the same functions
 * with every read of a weight taken from a second imported memory (`env.weights`, index 1),
 * while activations, scratches and outputs stay in `env.memory`. The engine instantiates it
 * once per weight memory, each instance pairing the one activation memory with one memory of
 * weights (several 4 GiB memories hold a model of any size).
 *
 * Which reads are weights is derived, not written at each of the kernels' ~380 loads: a
 * function marked `;; @weights $w $s` names the parameters that point into the weights; an
 * i32 local set from an expression that reads a weight pointer is one too (pointer arithmetic:
 * `$p = $w + r·cols`), as is a helper's parameter passed one; a load whose address reads one
 * reads memory 1. A loaded value is data, never a pointer. A weight pointer set from anything
 * else but a constant, passed where another call passes an activation pointer, or used as a
 * store's address is an error of the source, so the two builds cannot silently disagree.
 *
 * @module
 */

import { emitWat, type List, type Node } from "./_inline.ts";

const LOAD = /^(i32|i64|f32|f64|v128)\.load/;
const STORE = /^(i32|i64|f32|f64|v128)\.store/;

interface Fn {
  node: List;
  label: string;
  params: string[];
  /** i32 parameters and locals. */
  ints: Set<string>;
  tainted: Set<string>;
}

/** True when `e` reads a tainted local outside any load (a loaded value is not a pointer). */
function reads(e: Node, tainted: Set<string>): boolean {
  if (typeof e === "string") return false;
  const op = e[0] as string;
  if (LOAD.test(op)) return false;
  if ((op === "local.get" || op === "local.tee") && tainted.has(e[1] as string)) return true;
  return e.some((c) => reads(c, tainted));
}

/** True when `e` reads no local at all (a constant expression). */
function constant(e: Node): boolean {
  if (typeof e === "string") return true;
  if (e[0] === "local.get" || e[0] === "local.tee" || e[0] === "call") return false;
  return e.every(constant);
}

function walk(n: Node, f: (l: List) => void): void {
  if (typeof n === "string") return;
  f(n);
  for (const c of n) walk(c, f);
}

/**
 * The multi-memory variant of inlined kernels (`inlineTree`'s output): `env.weights` imported
 * as memory 1 after `env.memory`, and every weight read (see the module comment) addressed to
 * it. Throws when the source mixes weight and activation pointers.
 */
export function weightMemoryTree(root: List): List {
  const module = root.find((n): n is List => Array.isArray(n) && n[0] === "module");
  if (!module) throw new Error("kernels.wat: no (module …)");
  const fns = new Map<string, Fn>();
  const all: Fn[] = [];
  for (const n of module) {
    if (!Array.isArray(n) || n[0] !== "func") continue;
    const params: string[] = [], ints = new Set<string>();
    for (const d of n) {
      if (!Array.isArray(d) || (d[0] !== "param" && d[0] !== "local")) continue;
      if (d[0] === "param") params.push(d[1] as string);
      if (d[2] === "i32") ints.add(d[1] as string);
    }
    const name = typeof n[1] === "string" ? n[1] : undefined;
    const label = name ?? emitWat(n.find((d) => Array.isArray(d) && d[0] === "export")!);
    const fn: Fn = { node: n, label, params, ints, tainted: new Set() };
    for (const w of n.weights ?? []) {
      if (!ints.has(w) || !params.includes(w)) {
        throw new Error(`kernels.wat: @weights ${w} of ${label} is not an i32 parameter`);
      }
      fn.tainted.add(w);
    }
    if (name) fns.set(name, fn);
    all.push(fn);
  }
  // Propagate to a fixpoint: through sets of i32 locals and into callees' parameters.
  for (let changed = true; changed;) {
    changed = false;
    for (const fn of all) {
      walk(fn.node, (l) => {
        const op = l[0];
        if ((op === "local.set" || op === "local.tee") && fn.ints.has(l[1] as string)) {
          if (!fn.tainted.has(l[1] as string) && reads(l[2], fn.tainted)) {
            fn.tainted.add(l[1] as string);
            changed = true;
          }
        } else if (op === "call") {
          const callee = fns.get(l[1] as string);
          if (!callee) return;
          l.slice(2).forEach((arg, k) => {
            const p = callee.params[k];
            if (callee.ints.has(p) && !callee.tainted.has(p) && reads(arg, fn.tainted)) {
              callee.tainted.add(p);
              changed = true;
            }
          });
        }
      });
    }
  }
  // Check that no pointer is both, then address the weight loads to memory 1.
  const rewrite = (fn: Fn, n: Node): Node => {
    if (typeof n === "string") return n;
    const op = n[0] as string;
    const t = fn.tainted;
    if ((op === "local.set" || op === "local.tee") && t.has(n[1] as string)) {
      if (!reads(n[2], t) && !constant(n[2])) {
        throw new Error(
          `kernels.wat: ${fn.label}: weight pointer ${n[1]} set from ${emitWat(n[2])}`,
        );
      }
    }
    if (op === "call" && fns.has(n[1] as string)) {
      const callee = fns.get(n[1] as string)!;
      n.slice(2).forEach((arg, k) => {
        const p = callee.params[k];
        if (callee.tainted.has(p) && !reads(arg, t) && !constant(arg)) {
          throw new Error(
            `kernels.wat: ${fn.label} passes ${emitWat(arg)} as ${callee.label}'s weight ${p}`,
          );
        }
      });
    }
    const kids = n.map((c) => rewrite(fn, c));
    if (STORE.test(op) && reads(n[n.length - 2], t)) {
      throw new Error(`kernels.wat: ${fn.label} stores through a weight pointer`);
    }
    if (LOAD.test(op) && reads(n[n.length - 1], t)) return [kids[0], "1", ...kids.slice(1)];
    return kids;
  };
  const out: List = [];
  for (const n of module) {
    const fn = Array.isArray(n) ? all.find((f) => f.node === n) : undefined;
    out.push(fn ? rewrite(fn, n) : n);
    if (Array.isArray(n) && n[0] === "import" && n[2] === '"memory"') {
      out.push(["import", '"env"', '"weights"', ["memory", "1", "65536", "shared"]]);
    }
  }
  if (out.length !== module.length + 1) throw new Error("kernels.wat: no env.memory import");
  return root.map((n) => n === module ? out : n);
}

/** How many loads of each function read memory 1 in `weightMemoryTree`'s output (for tests). */
export function weightLoads(root: List): Map<string, number> {
  const counts = new Map<string, number>();
  const module = root.find((n): n is List => Array.isArray(n) && n[0] === "module")!;
  for (const n of module) {
    if (!Array.isArray(n) || n[0] !== "func") continue;
    let c = 0;
    walk(n, (l) => {
      if (LOAD.test(l[0] as string) && l[1] === "1") c++;
    });
    if (c) counts.set(emitWat(typeof n[1] === "string" ? n[1] : n[1]), c);
  }
  return counts;
}
