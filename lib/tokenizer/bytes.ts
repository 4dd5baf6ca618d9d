/**
 * Byte-level tokenizer (vocab 256): token id = byte value of the UTF-8 text. The tiny test
 * models of rwkv.cpp use it.
 * @module
 */

import { UsageError } from "../errors.ts";
import type { Tokenizer } from "./types.ts";
import { decodeUtf8, Utf8Stream } from "./_utf8.ts";

const utf8 = new TextEncoder();

/**
 * The byte-level tokenizer. There is no end-of-text token: id 0 is the byte 0.
 * @example
 * ```ts
 * const tok = new ByteTokenizer();
 * tok.encode("hé"); // [104, 195, 169]
 * ```
 */
export class ByteTokenizer implements Tokenizer {
  readonly kind = "bytes" as const;
  readonly vocabSize = 256;

  encode(text: string): number[] {
    return Array.from(utf8.encode(text));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    const out = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id <= 255 && id === Math.floor(id))) {
        throw new UsageError(`token id ${id} is not a byte (0 … 255)`);
      }
      out[i] = id;
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return decodeUtf8(this.decodeBytes(ids));
  }

  createDecoder(): { push(id: number): string; flush(): string } {
    const s = new Utf8Stream();
    return { push: (id) => s.push(this.decodeBytes([id])), flush: () => s.flush() };
  }
}
