/**
 * Tokens to streamed text for the server, with stop strings: text that might be the start of a
 * stop string is held back until it is known not to be.
 * @module
 */

import { heldBack } from "../generate.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";

/** Decodes generated tokens into text pieces, ending at the first stop string. */
export class TextStream {
  #decoder: { push(id: number): string; flush(): string };
  #stops: readonly string[];
  #pending = "";
  #trimStart: boolean;
  /** Set once a stop string was seen (the stop string itself is never emitted). */
  stopped = false;
  /** Every piece emitted so far. */
  text = "";

  /** `trimStart`: drop the reply's leading whitespace (a chat reply starts after "Assistant:"). */
  constructor(tokenizer: Tokenizer, stops: readonly string[], trimStart = false) {
    this.#decoder = tokenizer.createDecoder();
    this.#stops = stops.filter((s) => s.length > 0);
    this.#trimStart = trimStart;
  }

  #emit(piece: string): string {
    if (this.#trimStart) {
      piece = piece.replace(/^\s+/, "");
      if (piece) this.#trimStart = false;
    }
    this.text += piece;
    return piece;
  }

  /** True while some decoded text is held back (it may start a stop string). */
  get holding(): boolean {
    return this.#pending.length > 0;
  }

  /** From now on no stop string ends the text (what is held back is released next push). */
  disableStops(): void {
    this.#stops = [];
  }

  /** Text completed by `token` (may be ""); sets {@link TextStream.stopped} on a stop string. */
  push(token: number): string {
    if (this.stopped) return "";
    this.#pending += this.#decoder.push(token);
    if (this.#stops.length === 0) {
      const out = this.#pending;
      this.#pending = "";
      return this.#emit(out);
    }
    let cut = -1;
    for (const s of this.#stops) {
      const i = this.#pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.#pending.slice(0, cut);
      this.#pending = "";
      return this.#emit(out);
    }
    const keep = heldBack(this.#pending, this.#stops);
    const out = this.#pending.slice(0, this.#pending.length - keep);
    this.#pending = this.#pending.slice(this.#pending.length - keep);
    return this.#emit(out);
  }

  /** The rest at the end (nothing after a stop string). */
  flush(): string {
    if (this.stopped) return "";
    const out = this.#pending + this.#decoder.flush();
    this.#pending = "";
    return this.#emit(out);
  }
}
