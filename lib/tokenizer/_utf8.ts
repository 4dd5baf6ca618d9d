/**
 * Streaming UTF-8: emit only whole characters while bytes arrive token by token.
 * @module
 */

const decoder = new TextDecoder("utf-8");

/** Number of bytes at the end of `b[0 .. end)` that start a character not yet complete. */
export function incompleteTail(b: Uint8Array, end: number = b.length): number {
  // The last character's lead byte is at most 3 bytes back.
  for (let back = 1; back <= Math.min(4, end); back++) {
    const c = b[end - back];
    if ((c & 0xc0) === 0x80) continue; // continuation byte: keep looking
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * UTF-8 bytes to text; invalid sequences become U+FFFD as with `TextDecoder`. Short ASCII runs
 * (most tokens) skip `TextDecoder`, whose per-call cost dominates when streaming token by token.
 */
export function decodeUtf8(b: Uint8Array): string {
  if (b.length <= 16) {
    let ascii = true;
    for (let i = 0; i < b.length; i++) if (b[i] >= 0x80) ascii = false;
    if (ascii) return String.fromCharCode(...b);
  }
  return decoder.decode(b);
}

/**
 * Accumulates bytes and hands out the text of every complete character.
 * @example
 * ```ts
 * const s = new Utf8Stream();
 * s.push(Uint8Array.of(0xe4, 0xb8)); // ""
 * s.push(Uint8Array.of(0x96)); // "世"
 * ```
 */
export class Utf8Stream {
  #pending = new Uint8Array(0);

  /** True while bytes of an incomplete character are held back. */
  get pending(): boolean {
    return this.#pending.length > 0;
  }

  /** Adds bytes; returns the text now complete (never half a character). */
  push(bytes: Uint8Array): string {
    let all = bytes;
    if (this.#pending.length > 0) {
      all = new Uint8Array(this.#pending.length + bytes.length);
      all.set(this.#pending);
      all.set(bytes, this.#pending.length);
    }
    const keep = incompleteTail(all);
    this.#pending = keep === 0 ? new Uint8Array(0) : all.slice(all.length - keep);
    return keep === all.length ? "" : decodeUtf8(all.subarray(0, all.length - keep));
  }

  /** Returns whatever is left (an incomplete tail decodes to U+FFFD). */
  flush(): string {
    const rest = this.#pending;
    this.#pending = new Uint8Array(0);
    return rest.length ? decoder.decode(rest) : "";
  }
}
