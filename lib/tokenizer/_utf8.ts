/**
 * Streaming UTF-8: emit only whole characters while bytes arrive token by token.
 * @module
 */

/** Number of bytes at the end of `b` that start a character not yet complete. */
export function incompleteTail(b: Uint8Array): number {
  // Look back at most 3 bytes for the lead byte of the last character.
  for (let back = 1; back <= Math.min(4, b.length); back++) {
    const c = b[b.length - back];
    if ((c & 0xc0) === 0x80) continue; // continuation byte: keep looking
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/** Accumulates bytes and hands out the text of every complete character. */
export class Utf8Stream {
  #pending = new Uint8Array(0);
  #dec = new TextDecoder("utf-8");

  /** Adds bytes; returns the text now complete (never half a character). */
  push(bytes: Uint8Array): string {
    const all = new Uint8Array(this.#pending.length + bytes.length);
    all.set(this.#pending);
    all.set(bytes, this.#pending.length);
    const keep = incompleteTail(all);
    this.#pending = all.slice(all.length - keep);
    return keep === all.length ? "" : this.#dec.decode(all.subarray(0, all.length - keep));
  }

  /** Returns whatever is left (an incomplete tail decodes to U+FFFD). */
  flush(): string {
    const rest = this.#pending;
    this.#pending = new Uint8Array(0);
    return rest.length ? this.#dec.decode(rest) : "";
  }
}
