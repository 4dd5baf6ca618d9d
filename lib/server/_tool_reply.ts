/**
 * Constrained replies with tools: the opening a reply may take before its calls (`ReplyConstraint`),
 * either of two constraints (`EitherConstraint`), and the scanner that turns a reply's text into
 * call events as it streams (`CallScanner`).
 * @module
 */

import type { Tokenizer } from "../tokenizer/mod.ts";
import type { TokenConstraint } from "./scheduler.ts";
import { callId, type ToolCall } from "./tools.ts";
/** Where a {@link ReplyConstraint} is. */
type Phase = "undecided" | "marker" | "call" | "plain";

/**
 * A reply's constraint: an opening text, then a grammar. With `forced`, the opening (the tools'
 * call tag, or just the space a reply starts with before a response format's JSON) is emitted
 * as forced tokens, then the grammar's constraint takes over. With `auto` (tools the model may
 * or may not call), the model's first words decide: a reply starting with (a prefix of) the
 * opening goes on with the rest of it, forced, then the calls' grammar; any other reply is free
 * text.
 * @example
 * ```ts
 * import { Constraint } from "../grammar/constraint.ts";
 * import type { Grammar } from "../grammar/grammar.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokenizer: Tokenizer, g: Grammar;
 * const c = new ReplyConstraint(tokenizer, " <tool_call>", "auto", () => new Constraint(g, tokenizer));
 * ```
 */
export class ReplyConstraint implements TokenConstraint {
  #tokenizer: Tokenizer;
  #marker: string;
  #makeCalls: () => TokenConstraint;
  #phase: Phase;
  #head = "";
  #rest: number[] = [];
  #calls: TokenConstraint | undefined;

  /**
   * `marker`: the tag as it opens a reply (with the space a reply starts with, if any);
   * `makeCalls`: a fresh constraint of the calls' grammar.
   */
  constructor(
    tokenizer: Tokenizer,
    marker: string,
    mode: "auto" | "forced",
    makeCalls: () => TokenConstraint,
  ) {
    this.#tokenizer = tokenizer;
    this.#marker = marker;
    this.#makeCalls = makeCalls;
    this.#phase = mode === "auto" ? "undecided" : "marker";
    if (mode === "forced") {
      this.#rest = tokenizer.encode(marker);
      this.#enter();
    }
  }

  /** From the tag to the calls once the tag is through. */
  #enter(): void {
    if (this.#phase === "marker" && this.#rest.length === 0) {
      this.#phase = "call";
      this.#calls = this.#makeCalls();
    }
  }

  /** True once the reply is calling functions (its text is the calls, not content). */
  get calling(): boolean {
    return this.#phase === "marker" || this.#phase === "call";
  }

  /** True while the reply could still become calls (its text must be held back). */
  get undecided(): boolean {
    return this.#phase === "undecided";
  }

  mask(logits: Float32Array): void {
    if (this.#phase === "call") return this.#calls!.mask(logits);
    if (this.#phase === "marker") {
      const only = this.#rest[0];
      const keep = logits[only];
      logits.fill(-Infinity);
      logits[only] = keep;
    }
  }

  accept(token: number): void {
    switch (this.#phase) {
      case "call":
        return this.#calls!.accept(token);
      case "marker":
        if (token !== this.#rest[0]) {
          throw new RangeError(`token ${token} does not continue the tool-call tag`);
        }
        this.#rest.shift();
        break;
      case "undecided": {
        this.#head += String.fromCharCode(...this.#tokenizer.decodeBytes([token]));
        const said = this.#head.trimStart();
        const tag = this.#marker.trimStart();
        if (said === "") return;
        if (tag.startsWith(said)) {
          this.#phase = "marker";
          this.#rest = this.#tokenizer.encode(tag.slice(said.length));
        } else this.#phase = "plain";
        break;
      }
      default:
        return;
    }
    this.#enter();
  }

  forced(): number[] {
    if (this.#phase === "marker") return [...this.#rest];
    if (this.#phase === "call") return this.#calls!.forced();
    return [];
  }

  get complete(): boolean {
    if (this.#phase === "call") return this.#calls!.complete;
    return this.#phase !== "marker";
  }

  get finished(): boolean {
    return this.#phase === "call" && this.#calls!.finished;
  }
}

/**
 * Several constraints followed at once: a token is allowed when any of them allows it, and each
 * token drops the ones that did not allow it. A reply that may call tools (`auto`) or answer in
 * a response format is the calls' constraint and the format's, until the model's tokens choose.
 * @example
 * ```ts
 * import type { TokenConstraint } from "./scheduler.ts";
 * declare const calls: TokenConstraint, json: TokenConstraint;
 * const c = new EitherConstraint([calls, json]); // after a few tokens, c.alive.length === 1
 * ```
 */
export class EitherConstraint implements TokenConstraint {
  #alive: TokenConstraint[];
  /** Per branch, the tokens its last mask allowed (undefined: not masked since). */
  #allowed: Uint8Array[] | undefined;

  /** Follows `branches` (at least one). */
  constructor(branches: readonly TokenConstraint[]) {
    if (branches.length === 0) throw new RangeError("EitherConstraint needs a branch");
    this.#alive = [...branches];
  }

  /** The branches the output so far still matches. */
  get alive(): readonly TokenConstraint[] {
    return this.#alive;
  }

  mask(logits: Float32Array): void {
    if (this.#alive.length === 1) return this.#alive[0].mask(logits);
    const union = new Float32Array(logits.length).fill(-Infinity);
    this.#allowed = this.#alive.map((b) => {
      const copy = logits.slice();
      const f = b.forced();
      if (f.length > 0) {
        copy.fill(-Infinity);
        copy[f[0]] = logits[f[0]];
      } else b.mask(copy);
      const ok = new Uint8Array(logits.length);
      for (let i = 0; i < copy.length; i++) {
        if (copy[i] > -Infinity) (ok[i] = 1, union[i] = logits[i]);
      }
      return ok;
    });
    logits.set(union);
  }

  accept(token: number): void {
    if (this.#alive.length > 1) {
      const allowed = this.#allowed;
      const keep = this.#alive.filter((b, k) => {
        const f = b.forced();
        return f.length > 0 ? f[0] === token : allowed?.[k][token] === 1;
      });
      if (keep.length === 0) throw new RangeError(`token ${token} continues no branch`);
      this.#alive = keep;
    }
    this.#allowed = undefined;
    for (const b of this.#alive) b.accept(token);
  }

  forced(): number[] {
    const [first, ...rest] = this.#alive.map((b) => b.forced());
    let n = first.length;
    for (const f of rest) {
      let i = 0;
      while (i < n && i < f.length && f[i] === first[i]) i++;
      n = i;
    }
    return first.slice(0, n);
  }

  get complete(): boolean {
    return this.#alive.some((b) => b.complete);
  }

  get finished(): boolean {
    return this.#alive.every((b) => b.finished);
  }
}

/**
 * A streamed call's news: a new call (with its name), or more of its arguments.
 * @example
 * ```ts
 * declare const scanner: CallScanner, piece: string;
 * declare function send(index: number, text: string): void;
 * for (const e of scanner.push(piece)) if (e.kind === "args") send(e.index, e.text);
 * ```
 */
export type CallEvent =
  | { readonly kind: "start"; readonly index: number; readonly id: string; readonly name: string }
  | { readonly kind: "args"; readonly index: number; readonly text: string };

/**
 * Reads a reply's calls (`<tool_call>[{"name": …, "arguments": …}, …]`) as it streams, and says
 * when a call starts and which fragments of its arguments arrived (the arguments' JSON text,
 * exactly as generated). Arguments seen before their call's name wait for it.
 * @example
 * ```ts
 * const scanner = new CallScanner("<tool_call>");
 * scanner.push('<tool_call>[{"name": "f", "arguments": {"x"'); // start f, args '{"x"'
 * ```
 */
export class CallScanner {
  #marker: string;
  #pre = "";
  #open = false;
  #depth = 0;
  #inStr = false;
  #esc = false;
  #raw = "";
  #expectKey = false;
  #key = "";
  #capturing = false;
  #calls: { id: string; name?: string; args: string; sent: number; started: boolean }[] = [];

  /** `marker`: the tag that opens the calls (text before it is skipped). */
  constructor(marker: string) {
    this.#marker = marker.trim();
  }

  /** The calls so far (arguments as generated; complete once the reply is). */
  get calls(): ToolCall[] {
    return this.#calls.map((c) => ({ id: c.id, name: c.name ?? "", arguments: c.args.trim() }));
  }

  /** Feeds more of the reply; returns what became known. */
  push(text: string): CallEvent[] {
    if (!this.#open) {
      this.#pre += text;
      const at = this.#pre.indexOf(this.#marker);
      if (at < 0) return [];
      this.#open = true;
      text = this.#pre.slice(at + this.#marker.length);
    }
    for (const ch of text) this.#step(ch);
    const events: CallEvent[] = [];
    this.#calls.forEach((c, index) => {
      if (c.name === undefined) return;
      if (!c.started) {
        c.started = true;
        events.push({ kind: "start", index, id: c.id, name: c.name });
      }
      const upTo = this.#capturing && index === this.#calls.length - 1
        ? c.args.length
        : c.args.trimEnd().length;
      if (upTo > c.sent) {
        events.push({ kind: "args", index, text: c.args.slice(c.sent, upTo) });
        c.sent = upTo;
      }
    });
    return events;
  }

  #step(ch: string): void {
    const call = this.#calls.at(-1);
    if (this.#inStr) {
      if (this.#capturing) call!.args += ch;
      if (this.#esc) this.#esc = false;
      else if (ch === "\\") this.#esc = true;
      else if (ch === '"') {
        this.#inStr = false;
        if (!this.#capturing && this.#depth === 2) this.#string(this.#raw);
        return;
      }
      this.#raw += ch;
      return;
    }
    if (this.#capturing) {
      if (this.#depth === 2 && (ch === "," || ch === "}")) this.#capturing = false;
      else {
        if (call!.args === "" && /\s/.test(ch)) return;
        call!.args += ch;
        if (ch === '"') (this.#inStr = true, this.#raw = "");
        else if (ch === "{" || ch === "[") this.#depth++;
        else if (ch === "}" || ch === "]") this.#depth--;
        return;
      }
    }
    if (ch === '"') {
      this.#inStr = true;
      this.#raw = "";
    } else if (ch === "{" || ch === "[") {
      this.#depth++;
      if (this.#depth === 2 && ch === "{") {
        this.#calls.push({ id: callId(), args: "", sent: 0, started: false });
        this.#expectKey = true;
      }
    } else if (ch === "}" || ch === "]") this.#depth--;
    else if (ch === "," && this.#depth === 2) this.#expectKey = true;
    else if (ch === ":" && this.#depth === 2) {
      this.#expectKey = false;
      if (this.#key === "arguments") this.#capturing = true;
    }
  }

  #string(raw: string): void {
    let s: string;
    try {
      s = JSON.parse(`"${raw}"`);
    } catch {
      s = raw;
    }
    if (this.#expectKey) this.#key = s;
    else if (this.#key === "name") this.#calls.at(-1)!.name = s;
  }
}
