/**
 * The matcher: llama.cpp-style stacks of grammar positions over bytes, determinized lazily.
 *
 * A stack is an interned linked list of positions (its top is a BYTES element to match, the
 * rest are return positions); a matcher state is the interned set of stacks the bytes so far
 * can be in, plus whether the grammar could end here. Moving a state by a byte advances every
 * stack whose top accepts it and expands the result to BYTES tops again (a tail call pushes
 * nothing, so repetitions keep the stack flat). Transitions are memoized in a table, so a state
 * seen before moves by one array read: walking the token trie against a state is then a DFA
 * walk. An engine only grows; the grammar replaces it by a fresh one when it grows too big.
 * @module
 */

import { BYTES, END, type Program, REF } from "./program.ts";

/** Transition not computed yet. */
const UNKNOWN = -2;
/** No stack accepts the byte. */
export const DEAD = -1;

/** Grows an Int32Array to hold at least `n` entries, new entries set to `fill`. */
function grow(a: Int32Array<ArrayBuffer>, n: number, fill: number): Int32Array<ArrayBuffer> {
  if (n <= a.length) return a;
  let size = a.length || 1024;
  while (size < n) size *= 2;
  const b = new Int32Array(size).fill(fill, a.length);
  b.set(a);
  return b;
}

/** Memoized lazily determinized matcher of one grammar. */
export class Engine {
  readonly program: Program;
  // Stacks: node id → (position, parent node id or -1).
  #pos = new Int32Array(0);
  #parent = new Int32Array(0);
  #stackCount = 0;
  #stackIds = new Map<number, number>();
  // States.
  /** Sorted stack ids of every state. */
  readonly stacks: Int32Array[] = [];
  /** 1 when the grammar may end in this state. */
  complete = new Uint8Array(0);
  /** `trans[state * 256 + byte]`: the next state, DEAD or UNKNOWN. */
  trans = new Int32Array(0);
  #stateIds = new Map<string, number>();
  /** The state before any byte. */
  readonly start: number;
  /** Per state: the only byte it accepts (when it is not complete), else -1; -2 unknown. */
  #single = new Int32Array(0);

  // Scratch of the expansion.
  #out: number[] = [];
  #seen = new Set<number>();
  #reachedEnd = false;

  constructor(program: Program) {
    this.program = program;
    const { alts, root } = program;
    this.#begin();
    for (const a of alts[root]) this.#expand(this.#stack(a, -1));
    this.start = this.#finish();
  }

  /** Number of states so far (the grammar renews an engine that has too many). */
  get size(): number {
    return this.stacks.length + (this.#stackCount >> 3);
  }

  #stack(pos: number, parent: number): number {
    const key = pos + (parent + 1) * this.program.kind.length;
    let id = this.#stackIds.get(key);
    if (id === undefined) {
      id = this.#stackCount++;
      this.#pos = grow(this.#pos, id + 1, 0);
      this.#parent = grow(this.#parent, id + 1, 0);
      this.#pos[id] = pos;
      this.#parent[id] = parent;
      this.#stackIds.set(key, id);
    }
    return id;
  }

  #begin(): void {
    this.#out.length = 0;
    this.#seen.clear();
    this.#reachedEnd = false;
  }

  /** Adds the BYTES-topped stacks `id` expands to. */
  #expand(id: number): void {
    if (this.#seen.has(id)) return;
    this.#seen.add(id);
    const { kind, arg, alts } = this.program;
    const pos = this.#pos[id], parent = this.#parent[id];
    const k = kind[pos];
    if (k === BYTES) {
      this.#out.push(id);
    } else if (k === END) {
      if (parent < 0) this.#reachedEnd = true;
      else this.#expand(parent);
    } else if (k === REF) {
      const ret = kind[pos + 1] === END ? parent : this.#stack(pos + 1, parent);
      for (const a of alts[arg[pos]]) this.#expand(this.#stack(a, ret));
    }
  }

  /** Interns the expansion collected since {@link Engine.#begin} as a state. */
  #finish(): number {
    const out = this.#out;
    if (out.length === 0 && !this.#reachedEnd) return DEAD;
    const ids = Int32Array.from(out).sort();
    const key = ids.join(",") + (this.#reachedEnd ? "$" : "");
    let s = this.#stateIds.get(key);
    if (s === undefined) {
      s = this.stacks.push(ids) - 1;
      this.#stateIds.set(key, s);
      this.trans = grow(this.trans, (s + 1) * 256, UNKNOWN);
      this.complete = growBytes(this.complete, s + 1);
      this.complete[s] = this.#reachedEnd ? 1 : 0;
      this.#single = grow(this.#single, s + 1, -2);
    }
    return s;
  }

  /**
   * The state after `byte` in state `s` (DEAD when no stack accepts it). The first call for a
   * state computes all its 256 transitions: bytes accepted by the same stacks lead to the same
   * state, so each group of bytes is expanded once (a JSON string's ASCII characters are one).
   */
  step(s: number, byte: number): number {
    const t = this.trans[s * 256 + byte];
    if (t !== UNKNOWN) return t;
    this.#fill(s);
    return this.trans[s * 256 + byte];
  }

  #fill(s: number): void {
    const { arg, sets } = this.program;
    const stacks = this.stacks[s];
    const n = stacks.length;
    const setBase = new Int32Array(n);
    for (let k = 0; k < n; k++) setBase[k] = arg[this.#pos[stacks[k]]] * 256;
    const groups = new Map<string | number, number>(); // accepting stacks → next state
    const row = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      let key: string | number;
      if (n <= 30) {
        let m = 0;
        for (let k = 0; k < n; k++) if (sets[setBase[k] + b]) m |= 1 << k;
        key = m;
      } else {
        let str = "";
        for (let k = 0; k < n; k++) if (sets[setBase[k] + b]) str += k + ",";
        key = str;
      }
      if (key === 0 || key === "") {
        row[b] = DEAD;
        continue;
      }
      let next = groups.get(key);
      if (next === undefined) {
        next = this.#advance(s, b);
        groups.set(key, next);
      }
      row[b] = next;
    }
    this.trans.set(row, s * 256); // #advance may have grown the table: write it afterwards
  }

  /** Advances every stack of `s` that accepts `byte`, expanded. */
  #advance(s: number, byte: number): number {
    const { kind, arg, sets } = this.program;
    this.#begin();
    for (const id of this.stacks[s]) {
      const pos = this.#pos[id];
      if (sets[arg[pos] * 256 + byte]) {
        const next = pos + 1;
        const parent = this.#parent[id];
        // A finished alternative returns at once (no node for the END position).
        if (kind[next] === END && parent >= 0) this.#expand(parent);
        else this.#expand(this.#stack(next, parent));
      }
    }
    return this.#finish();
  }

  /** True when state `s` accepts no byte (only the end of the output can follow). */
  isFinal(s: number): boolean {
    return this.stacks[s].length === 0;
  }

  /**
   * The shortest bytes that take state `s` to a complete state (breadth first over bytes),
   * or undefined when none is found within `limit` states.
   */
  shortestCompletion(s: number, limit = 200_000): Uint8Array | undefined {
    const from = new Map<number, [number, number]>([[s, [-1, -1]]]);
    let frontier = [s];
    while (frontier.length && from.size < limit) {
      const next: number[] = [];
      for (const x of frontier) {
        if (this.complete[x]) {
          const out: number[] = [];
          for (let y = x; y !== s;) {
            const [prev, byte] = from.get(y)!;
            out.push(byte);
            y = prev;
          }
          return Uint8Array.from(out.reverse());
        }
        for (let b = 0; b < 256; b++) {
          const t = this.step(x, b);
          if (t !== DEAD && !from.has(t)) {
            from.set(t, [x, b]);
            next.push(t);
          }
        }
      }
      frontier = next;
    }
    return undefined;
  }

  /** The only byte state `s` accepts, or -1 when it accepts several or may end. */
  singleByte(s: number): number {
    let b = this.#single[s];
    if (b !== -2) return b;
    b = -1;
    if (!this.complete[s]) {
      const { arg, sets } = this.program;
      let count = 0;
      for (let x = 0; x < 256 && count < 2; x++) {
        for (const id of this.stacks[s]) {
          if (sets[arg[this.#pos[id]] * 256 + x]) {
            count++;
            b = x;
            break;
          }
        }
      }
      if (count !== 1) b = -1;
    }
    this.#single[s] = b;
    return b;
  }
}

function growBytes(a: Uint8Array<ArrayBuffer>, n: number): Uint8Array<ArrayBuffer> {
  if (n <= a.length) return a;
  let size = a.length || 1024;
  while (size < n) size *= 2;
  const b = new Uint8Array(size);
  b.set(a);
  return b;
}
