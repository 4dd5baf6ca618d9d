/**
 * A pickle VM that knows only what `torch.save` emits (protocols 2–5) and builds plain values.
 * Globals come from a caller's allow-list; any other is refused by name before anything else
 * happens. Nothing is ever executed: "calling" an allowed global runs our own TypeScript.
 *
 * It reads what CPython's unpickler reads, or refuses: strings must be valid UTF-8 (torch loads
 * with `encoding="utf-8"`), DICT/SETITEMS take key-value pairs, FRAME lengths must fit, text
 * INT/LONG follow `strtol`/`int(text, 0)`, dict keys compare as Python compares them
 * (`1 == 1.0 == True`), and floats stay floats (a size of `4.0` is not an int). Every opcode and
 * every value built is counted against the open's budgets.
 * @module
 */

import { bytesRepr, bytesReprLength } from "./pyrepr.ts";
import { FormatError, UnsafePickleError } from "../errors.ts";
import { Counter, type Limits, overBudget } from "./_limits.ts";
import { DEFAULT_LIMITS } from "./checkpoint.ts";

const MAX_LINE = 256;

/** A Python float (kept apart from ints: torch refuses a float where it wants an int). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A reference to a global the allow-list accepted. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * A Python dict: insertion ordered, keys compared as Python compares them. A key equal to an
 * existing one keeps the first key object and its place, and replaces the value, as in Python.
 */
export class PyDict {
  /** canonical key → [key as first set, value]; made on the first set (empty dicts are cheap). */
  #items: Map<unknown, [unknown, unknown]> | undefined;
  /** State set by BUILD (e.g. an OrderedDict's `_metadata`), kept and ignored. */
  state?: unknown;
  /** Sets `key` (whose canonical form is `canon`, from {@link KeyCanon}) to `value`. */
  setCanonical(canon: unknown, key: unknown, value: unknown): void {
    this.#items ??= new Map();
    const it = this.#items.get(canon);
    if (it) it[1] = value;
    else this.#items.set(canon, [key, value]);
  }
  /** The value under a string or int key. */
  get(key: string | number): unknown {
    return this.#items?.get(key)?.[1];
  }
  get size(): number {
    return this.#items?.size ?? 0;
  }
  *values(): IterableIterator<unknown> {
    for (const it of this.#items?.values() ?? []) yield it[1];
  }
  *[Symbol.iterator](): IterableIterator<[unknown, unknown]> {
    for (const it of this.#items?.values() ?? []) yield [it[0], it[1]];
  }
}

/** What the VM needs from its caller. */
export interface PickleHooks {
  /** Returns the object an allowed global stands for, or undefined to refuse it. */
  findGlobal(module: string, name: string): unknown;
  /** Applies an allowed callable (REDUCE / NEWOBJ). */
  call(fn: unknown, args: unknown[]): unknown;
  /** Resolves a persistent id (BINPERSID). */
  persistentLoad(pid: unknown): unknown;
}

/** True for a Python tuple (the VM freezes tuples; lists stay mutable arrays). */
export function isTuple(x: unknown): x is readonly unknown[] {
  return Array.isArray(x) && Object.isFrozen(x);
}

/**
 * Python's hash equality for dict keys: maps each key to a value that JS `Map` compares the
 * same way. Tuples and bytes compare by value: they are interned by their items' canonical
 * forms, once per tuple object, so a DAG of shared tuples costs its size, not its expansion.
 */
export class KeyCanon {
  readonly #tuples = new WeakMap<object, object>();
  readonly #interned = new Map<string, object>();
  readonly #strings = new Map<string, number>();
  readonly #objects = new WeakMap<object, number>();
  #serial = 0;
  constructor(
    readonly file: string,
    readonly work: Counter,
    readonly maxDepth: number,
  ) {}

  canon(k: unknown, depth = 0): unknown {
    switch (typeof k) {
      case "string":
      case "number":
        return k;
      case "boolean":
        return k ? 1 : 0;
      case "bigint":
        return Number.isSafeInteger(Number(k)) && BigInt(Number(k)) === k ? Number(k) : k;
    }
    if (k === null) return null;
    if (k instanceof PyFloat) {
      const v = k.value;
      if (Number.isNaN(v)) return k; // NaN equals only itself
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) return BigInt(v);
      return v === 0 ? 0 : v;
    }
    if (k instanceof Uint8Array) {
      this.work.spend(k.length + 2);
      return this.#intern("y" + latin1(k));
    }
    if (k instanceof PyDict || (Array.isArray(k) && !Object.isFrozen(k))) {
      throw new FormatError(
        this.file,
        "pickle",
        `unhashable dict key (a ${k instanceof PyDict ? "dict" : "list"})`,
      );
    }
    if (Array.isArray(k)) {
      const known = this.#tuples.get(k);
      if (known) return known;
      if (depth >= this.maxDepth) {
        throw new FormatError(
          this.file,
          "limits.depth",
          `a dict key nests tuples deeper than ${this.maxDepth}`,
        );
      }
      this.work.spend(k.length * 8 + 2);
      const sig = k.map((x) => this.#token(this.canon(x, depth + 1))).join(",");
      const c = this.#intern("t" + sig);
      this.#tuples.set(k, c);
      return c;
    }
    return k; // other objects (globals, tensors, storages) hash by identity
  }

  #token(c: unknown): string {
    switch (typeof c) {
      case "string": {
        let id = this.#strings.get(c);
        if (id === undefined) this.#strings.set(c, id = this.#strings.size);
        return "s" + id;
      }
      case "number":
        return "n" + c;
      case "bigint":
        return "b" + c;
    }
    if (c === null) return "N";
    let id = this.#objects.get(c as object);
    if (id === undefined) this.#objects.set(c as object, id = this.#serial++);
    return "o" + id;
  }

  #intern(sig: string): object {
    let o = this.#interned.get(sig);
    if (!o) this.#interned.set(sig, o = Object.freeze({}));
    return o;
  }
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

/**
 * CPython's text INT: `strtol(text, 0)` (so `010` is octal 8 and `0x3` is 3), falling back to
 * `int(text, 0)` when strtol stops early or overflows; `00`/`01` (or any 0/1 written in two
 * characters) are False/True. Returns undefined when CPython would raise.
 */
export function parseTextInt(line: string): number | bigint | boolean | undefined {
  if (line === "") return undefined; // CPython: "pickle data was truncated"
  const c = strtol(line);
  if (c !== undefined) {
    if (line.length === 2 && (c === 0 || c === 1)) return c === 1;
    return c;
  }
  return pyIntBase0(line);
}

const SPACE = /^[ \t\n\v\f\r]*/;

/** glibc strtol(s, &end, 0) on a 64-bit long; undefined unless it consumed all of `s`. */
function strtol(s: string): number | bigint | undefined {
  let i = SPACE.exec(s)![0].length;
  let neg = false;
  if (s[i] === "+" || s[i] === "-") neg = s[i++] === "-";
  let base = 10;
  if (
    s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X") && /[0-9a-fA-F]/.test(s[i + 2] ?? "")
  ) {
    base = 16;
    i += 2;
  } else if (s[i] === "0") base = 8;
  const start = i;
  while (i < s.length && digitValue(s[i]) < base) i++;
  if (i === start) return undefined; // no digits

  if (i !== s.length) return undefined;
  const text = s.slice(start, i);
  let v = base === 10 ? BigInt(text) : BigInt((base === 16 ? "0x" : "0o") + text);
  if (neg) v = -v;
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) return undefined; // ERANGE
  return Number.isSafeInteger(Number(v)) ? Number(v) : v;
}

function digitValue(c: string): number {
  const x = c.charCodeAt(0);
  if (x >= 48 && x <= 57) return x - 48;
  if (x >= 97 && x <= 122) return x - 87;
  if (x >= 65 && x <= 90) return x - 55;
  return 99;
}

/** Python's `int(text, 0)`: whitespace around, a sign, 0x/0o/0b, single underscores between digits. */
export function pyIntBase0(s: string): number | bigint | undefined {
  const m =
    /^[ \t\n\v\f\r]*([+-]?)(0[xX]|0[oO]|0[bB])?(_?[0-9a-zA-Z]+(?:_[0-9a-zA-Z]+)*)[ \t\n\v\f\r]*$/
      .exec(s);
  if (!m) return undefined;
  const [, sign, prefix, body0] = m;
  if (!prefix && body0.startsWith("_")) return undefined;
  const body = body0.replaceAll("_", "");
  const base = !prefix ? 10 : { x: 16, o: 8, b: 2 }[prefix[1].toLowerCase() as "x" | "o" | "b"];
  for (const c of body) if (digitValue(c) >= base) return undefined;
  if (base === 10 && body.length > 1 && body[0] === "0" && /[^0]/.test(body)) return undefined;
  if (body.length > 4300) return undefined; // CPython's int max str digits
  let v = base === 10 ? BigInt(body) : BigInt(`0${prefix[1].toLowerCase()}${body}`);
  if (sign === "-") v = -v;
  return Number.isSafeInteger(Number(v)) ? Number(v) : v;
}

/** Estimated bytes each value costs while it is held (V8 object headers and slots). */
const COST = { slot: 8, dict: 64, item: 96, array: 32, memo: 24, string: 24, object: 128 };

/**
 * The memo: an array for the dense indices pickles use (MEMOIZE counts up from 0), a map for
 * the rest, so millions of entries neither rehash a huge map nor leave holes in an array.
 */
class Memo {
  readonly #dense: unknown[] = [];
  readonly #sparse = new Map<number, unknown>();
  #count = 0;
  get size(): number {
    return this.#count;
  }
  set(k: number, v: unknown): void {
    if (k <= this.#dense.length) {
      if (k === this.#dense.length) this.#count++;
      this.#dense[k] = v;
      return;
    }
    if (!this.#sparse.has(k)) this.#count++;
    this.#sparse.set(k, v);
  }
  has(k: number): boolean {
    return k < this.#dense.length || this.#sparse.has(k);
  }
  get(k: number): unknown {
    return k < this.#dense.length ? this.#dense[k] : this.#sparse.get(k);
  }
}

/**
 * Runs one pickle from `bytes` at `start`; returns the value and the offset after STOP.
 * `file` names the file in errors. `budget` counts opcodes and the memory the values hold
 * (shared by the pickles of one file); `keys` turns dict keys into their Python-equal forms.
 */
export function unpickle(
  bytes: Uint8Array,
  hooks: PickleHooks,
  file: string,
  start: number,
  budget: PickleBudget,
): { value: unknown; end: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const dec = new TextDecoder("utf-8", { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Memo();
  const { memory, keys } = budget;
  let ops = budget.opsLeft;
  let p = start;
  let opAt = start;
  const fail = (msg: string): never => {
    throw new FormatError(file, `pickle offset ${opAt}`, msg);
  };
  const need = (n: number) => {
    if (n < 0 || p + n > bytes.length) fail("truncated pickle");
  };
  const u8 = () => (need(1), bytes[p++]);
  const u16 = () => (need(2), p += 2, v.getUint16(p - 2, true));
  const u32 = () => (need(4), p += 4, v.getUint32(p - 4, true));
  const i32 = () => (need(4), p += 4, v.getInt32(p - 4, true));
  const u64 = () => {
    need(8);
    p += 8;
    const n = v.getBigUint64(p - 8, true);
    return n > BigInt(bytes.length) ? bytes.length + 1 : Number(n);
  };
  const take = (n: number) => (need(n), p += n, bytes.subarray(p - n, p));
  const text = (b: Uint8Array): string => {
    memory.spend(COST.string + 2 * b.length);
    try {
      return dec.decode(b);
    } catch {
      return fail("string is not valid UTF-8");
    }
  };
  const line = () => {
    // GLOBAL lines name a module and an attribute: short. A bound keeps garbage out of errors.
    const e = bytes.subarray(p, p + MAX_LINE + 1).indexOf(0x0a) + p;
    if (e < p) {
      fail(p + MAX_LINE < bytes.length ? "pickle text line too long" : "truncated pickle line");
    }
    const s = text(bytes.subarray(p, e));
    p = e + 1;
    return s;
  };
  const push = (x: unknown) => {
    memory.spend(COST.slot);
    stack.push(x);
  };
  const pop = () => (stack.length ? stack.pop() : fail("stack underflow"));
  const top = () => (stack.length ? stack[stack.length - 1] : fail("stack underflow"));
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail("no MARK on the stack");
    return stack.splice(m!);
  };
  const tuple = (items: unknown[]) => {
    memory.spend(COST.array + COST.slot * items.length);
    return Object.freeze(items);
  };
  const global = (module: string, name: string) => {
    const g = hooks.findGlobal(module, name);
    if (g === undefined) throw new UnsafePickleError(file, `${module}.${name}`);
    return g;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof PyDict)) fail("SETITEM(S) on a non-dict");
    // CPython pairs items up and raises on a key left without a value.
    if (items.length % 2) fail(`${items.length} items for a dict: a key has no value`);
    memory.spend(COST.item * items.length / 2);
    for (let i = 0; i < items.length; i += 2) {
      (d as PyDict).setCanonical(keys.canon(items[i]), items[i], items[i + 1]);
    }
  };
  const append = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail("APPEND(S) on a non-list");
    memory.spend(COST.slot * items.length);
    // A loop, not push(...items): spreading a huge list would overflow the call stack.
    for (const x of items) (l as unknown[]).push(x);
  };
  const call = (fn: unknown, args: unknown) => {
    if (!isTuple(args)) fail("REDUCE/NEWOBJ arguments are not a tuple");
    memory.spend(COST.object);
    return hooks.call(fn, args as unknown[]);
  };
  const long = (b: Uint8Array) => {
    memory.spend(COST.string + b.length);
    let x = 0n;
    const n = b.length;
    for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
    if (n > 0 && b[n - 1] & 0x80) x -= 1n << BigInt(8 * n);
    return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(x)
      : x;
  };

  try {
    for (;;) {
      opAt = p;
      if (--ops < 0) throw budget.outOfOps();
      const op = u8();
      switch (op) {
        case 0x80: // PROTO
          if (u8() > 5) fail("pickle protocol above 5");
          break;
        case 0x95: { // FRAME: the frame must be there in full (CPython reads it at once)
          const n = u64();
          if (p + n > bytes.length) fail(`FRAME of ${n} bytes runs past the pickle`);
          break;
        }
        case 0x2e: // STOP
          if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
          return { value: stack[0], end: p };
        case 0x28: // MARK
          memory.spend(COST.slot);
          marks.push(stack.length);
          break;
        case 0x7d: // EMPTY_DICT
          memory.spend(COST.dict);
          push(new PyDict());
          break;
        case 0x5d: // EMPTY_LIST
          memory.spend(COST.array);
          push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          push(tuple([]));
          break;
        case 0x74: // TUPLE
          push(tuple(popMark()));
          break;
        case 0x85: // TUPLE1
          push(tuple([pop()]));
          break;
        case 0x86: { // TUPLE2
          const b = pop(), a = pop();
          push(tuple([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = pop(), b = pop(), a = pop();
          push(tuple([a, b, c]));
          break;
        }
        case 0x6c: { // LIST
          const items = popMark();
          memory.spend(COST.array + COST.slot * items.length);
          push(items);
          break;
        }
        case 0x64: { // DICT
          const d = new PyDict();
          memory.spend(COST.dict);
          setItems(d, popMark());
          push(d);
          break;
        }
        case 0x58: // BINUNICODE
          push(text(take(u32())));
          break;
        case 0x8c: // SHORT_BINUNICODE
          push(text(take(u8())));
          break;
        case 0x8d: // BINUNICODE8
          push(text(take(u64())));
          break;
        case 0x55: // SHORT_BINSTRING
          push(text(take(u8())));
          break;
        case 0x54: { // BINSTRING (a signed length in CPython)
          const n = i32();
          if (n < 0) fail("BINSTRING with a negative length");
          push(text(take(n)));
          break;
        }
        case 0x43: // SHORT_BINBYTES
        case 0x42: // BINBYTES
        case 0x8e: { // BINBYTES8
          const n = op === 0x43 ? u8() : op === 0x42 ? u32() : u64();
          const b = take(n);
          memory.spend(COST.object + n);
          push(b.slice());
          break;
        }
        case 0x4b: // BININT1
          push(u8());
          break;
        case 0x4d: // BININT2
          push(u16());
          break;
        case 0x4a: // BININT
          push(i32());
          break;
        case 0x49: { // INT (text), as CPython's load_int reads it
          const x = parseTextInt(line());
          if (x === undefined) fail("INT text is not an integer");
          push(x);
          break;
        }
        case 0x4c: { // LONG (text): int(text, 0), a trailing "L" dropped
          const s = line();
          const x = s === "" ? undefined : pyIntBase0(s.endsWith("L") ? s.slice(0, -1) : s);
          if (x === undefined) fail("LONG text is not an integer");
          push(x);
          break;
        }
        case 0x8a: // LONG1
          push(long(take(u8())));
          break;
        case 0x8b: { // LONG4
          const n = i32();
          if (n < 0) fail("LONG4 with a negative length");
          push(long(take(n)));
          break;
        }
        case 0x47: // BINFLOAT (big-endian)
          need(8);
          memory.spend(COST.string);
          push(new PyFloat(v.getFloat64(p, false)));
          p += 8;
          break;
        case 0x4e: // NONE
          push(null);
          break;
        case 0x88: // NEWTRUE
          push(true);
          break;
        case 0x89: // NEWFALSE
          push(false);
          break;
        case 0x71: // BINPUT
        case 0x72: { // LONG_BINPUT
          const k = op === 0x71 ? u8() : u32();
          // Picklers number memo entries from 0, one per value: an index past the pickle's
          // size is no pickler's (CPython would allocate a memo that long, torch runs out
          // of memory on such files).
          if (k > bytes.length) fail(`memo index ${k} is past anything this pickle numbers`);
          memory.spend(memo.has(k) ? 0 : COST.memo);
          memo.set(k, top());
          break;
        }
        case 0x94: // MEMOIZE
          memory.spend(COST.memo);
          memo.set(memo.size, top());
          break;
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET
          const k = op === 0x68 ? u8() : u32();
          if (!memo.has(k)) fail(`memo key ${k} not set`);
          push(memo.get(k));
          break;
        }
        case 0x30: // POP
          if (marks.length && marks[marks.length - 1] === stack.length) marks.pop();
          else pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          push(top());
          break;
        case 0x63: { // GLOBAL
          const module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = pop(), module = pop();
          if (typeof name !== "string" || typeof module !== "string") fail("bad STACK_GLOBAL");
          push(global(module as string, name as string));
          break;
        }
        case 0x52: { // REDUCE
          const args = pop(), fn = pop();
          push(call(fn, args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = pop(), cls = pop();
          push(call(cls, args));
          break;
        }
        case 0x62: { // BUILD: a dict's state is kept; torch never BUILDs anything else
          const state = pop();
          const obj = top();
          if (!(obj instanceof PyDict)) {
            fail(
              "BUILD on something other than a dict (torch would apply __setstate__, e.g. " +
                "re-point a tensor); refused",
            );
          }
          (obj as PyDict).state = state;
          break;
        }
        case 0x51: // BINPERSID
          memory.spend(COST.object);
          push(hooks.persistentLoad(pop()));
          break;
        case 0x73: { // SETITEM
          const value = pop(), key = pop();
          setItems(top(), [key, value]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = popMark();
          setItems(top(), items);
          break;
        }
        case 0x61: { // APPEND
          const x = pop();
          append(top(), [x]);
          break;
        }
        case 0x65: { // APPENDS
          const items = popMark();
          append(top(), items);
          break;
        }
        default:
          fail(
            `unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} ` +
              `(${JSON.stringify(String.fromCharCode(op))}): torch.save never writes it`,
          );
      }
    }
  } finally {
    budget.opsLeft = Math.max(0, ops);
  }
}

/**
 * The budgets one file's pickles share: opcodes, the memory the values hold, bytes of names and
 * keys, and the work their values make the reader do (copies, walks). Shared values (memo
 * references) let a small pickle describe a huge DAG; charging each visit against a budget
 * proportional to the pickle's size (and at most `limits.pickleOps`) keeps hostile input linear.
 */
export class PickleBudget {
  opsLeft: number;
  readonly memory: Counter;
  readonly names: Counter;
  readonly keys: KeyCanon;
  readonly #work: Counter;
  /** `inputBytes`: the size of the pickle whose values are walked. */
  constructor(readonly file: string, readonly limits: Limits, inputBytes: number) {
    this.opsLeft = limits.pickleOps;
    this.memory = new Counter(
      file,
      "pickleMemory",
      limits.pickleMemory,
      "memory held by the pickle's values",
    );
    this.names = new Counter(file, "nameBytes", limits.nameBytes, "bytes of names and keys");
    this.keys = new KeyCanon(file, this.names, limits.depth);
    // A raised limits.pickleOps lifts the proportional bound too.
    const ops = limits.pickleOps;
    this.#work = new Counter(
      file,
      "pickleOps",
      ops > DEFAULT_LIMITS.pickleOps ? ops : Math.min(ops, 16 * inputBytes + 65536),
      "work on the pickle's values (16 steps per pickle byte, at most limits.pickleOps)",
    );
  }
  outOfOps(): FormatError {
    return overBudget(this.file, "pickleOps", this.limits.pickleOps, "pickle opcodes executed");
  }
  /** Charges `n` steps of work on the values. */
  charge(n: number): void {
    this.#work.spend(n);
  }
}

/**
 * Python's `str()` of a dict key, as a tensor name or metadata key. The length is known (and
 * charged to `names`) before any of the string is built, so a tuple of tuples describing a
 * gigabyte-long name is refused without building it.
 */
export function keyName(k: unknown, budget: PickleBudget): string {
  if (typeof k === "string") return k;
  const sizes = new WeakMap<object, number>();
  const size = (x: unknown, depth: number): number => {
    if (Array.isArray(x)) {
      const known = sizes.get(x);
      if (known !== undefined) return known;
      if (depth >= budget.limits.depth) {
        throw new FormatError(
          budget.file,
          "limits.depth",
          `a dict key nests deeper than ${budget.limits.depth}`,
        );
      }
      let n = 2 + Math.max(0, 2 * (x.length - 1)) + (x.length === 1 ? 1 : 0);
      for (const e of x) n += size(e, depth + 1);
      sizes.set(x, n);
      if (n > budget.limits.nameBytes) budget.names.spend(n); // fails early, before the sum
      return n;
    }
    return typeof x === "string"
      ? x.length + 2
      : x instanceof Uint8Array
      ? bytesReprLength(x)
      : repr(x).length;
  };
  budget.names.spend(size(k, 0));
  return str(k);
}

function str(x: unknown): string {
  return typeof x === "string" ? x : repr(x);
}

function repr(x: unknown): string {
  if (typeof x === "string") return `'${x}'`;
  if (typeof x === "boolean") return x ? "True" : "False";
  if (x === null) return "None";
  if (typeof x === "number" || typeof x === "bigint") return String(x);
  if (x instanceof PyFloat) return floatRepr(x.value);
  if (x instanceof Uint8Array) return bytesRepr(x);
  if (x instanceof PyGlobal) return x.qualified;
  if (Array.isArray(x)) return `(${x.map(repr).join(", ")}${x.length === 1 ? "," : ""})`;
  return `<${(x as object)?.constructor?.name ?? typeof x}>`;
}

/** Python's repr of a float (close enough for names: 1.0, 0.5, inf, nan). */
export function floatRepr(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return Number.isInteger(v) && Math.abs(v) < 1e16 ? v.toFixed(1) : String(v);
}
