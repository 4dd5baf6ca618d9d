/**
 * A pickle VM that knows only what `torch.save` emits (protocols 2–5) and builds plain values.
 * Globals come from a caller's allow-list; any other is refused by name before anything else
 * happens. Nothing is ever executed: "calling" an allowed global runs our own TypeScript.
 * @module
 */

import { FormatError, UnsafePickleError } from "../errors.ts";

const MAX_LINE = 256;

/** A Python dict (insertion ordered; keys are strings or numbers in torch checkpoints). */
export class PyDict extends Map<unknown, unknown> {
  /** State set by BUILD (e.g. an OrderedDict's `_metadata`), kept and ignored. */
  state?: unknown;
}

/** A reference to a global the allow-list accepted. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
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

/**
 * Runs one pickle from `bytes` at `start`; returns the value and the offset after STOP.
 * `file` names the file in errors.
 */
export function unpickle(
  bytes: Uint8Array,
  hooks: PickleHooks,
  file: string,
  start = 0,
): { value: unknown; end: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const dec = new TextDecoder("utf-8", { fatal: false });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  // Every opcode consumes at least one input byte and pushes at most one value, and strings
  // are sliced from the input, so stack, memo and strings are all bounded by the input size.
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
  const take = (n: number) => (need(n), p += n, bytes.subarray(p - n, p));
  const line = () => {
    // GLOBAL lines name a module and an attribute: short. A bound keeps garbage out of errors.
    const e = bytes.subarray(p, p + MAX_LINE + 1).indexOf(0x0a) + p;
    if (e < p) {
      fail(p + MAX_LINE < bytes.length ? "pickle text line too long" : "truncated pickle line");
    }
    const s = dec.decode(bytes.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = () => (stack.length ? stack.pop() : fail("stack underflow"));
  const top = () => (stack.length ? stack[stack.length - 1] : fail("stack underflow"));
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail("no MARK on the stack");
    return stack.splice(m!);
  };
  const global = (module: string, name: string) => {
    const g = hooks.findGlobal(module, name);
    if (g === undefined) throw new UnsafePickleError(file, `${module}.${name}`);
    return g;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof PyDict)) fail("SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < items.length; i += 2) (d as PyDict).set(items[i], items[i + 1]);
  };
  const append = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l)) fail("APPEND(S) on a non-list");
    // A loop, not push(...items): spreading a huge list would overflow the call stack.
    for (const x of items) (l as unknown[]).push(x);
  };

  for (;;) {
    opAt = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME: length is informative only
        take(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: p };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(Object.freeze([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(Object.freeze([a, b, c]));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(dec.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(dec.decode(take(u8())));
        break;
      case 0x8d: { // BINUNICODE8
        const n = Number(v.getBigUint64((need(8), p += 8, p - 8), true));
        stack.push(dec.decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(dec.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(dec.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x49: { // INT (text)
        const s = line();
        stack.push(s === "01" ? true : s === "00" ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x8a: { // LONG1
        const n = u8();
        const b = take(n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) x -= 1n << BigInt(8 * n);
        stack.push(
          x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(x)
            : x,
        );
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(v.getFloat64(p, false));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo key ${k} not set`);
        stack.push(memo.get(k));
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x63: { // GLOBAL
        const module = line(), name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof name !== "string" || typeof module !== "string") fail("bad STACK_GLOBAL");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        if (!Array.isArray(args)) fail("REDUCE arguments are not a tuple");
        stack.push(hooks.call(fn, args as unknown[]));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop(), cls = pop();
        if (!Array.isArray(args)) fail("NEWOBJ arguments are not a tuple");
        stack.push(hooks.call(cls, args as unknown[]));
        break;
      }
      case 0x62: { // BUILD: set state; we keep it only on dicts
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.state = state;
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
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
}
