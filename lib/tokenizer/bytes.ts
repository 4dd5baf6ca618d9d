/**
 * Byte-level tokenizer (vocab 256): token id = byte value of the UTF-8 text.
 * @module
 */

import { UsageError } from "../errors.ts";
import type { Tokenizer } from "./mod.ts";
import { Utf8Stream } from "./_utf8.ts";

/** The byte-level tokenizer of small test models (rwkv.cpp's tiny models). */
export class ByteTokenizer implements Tokenizer {
  readonly kind = "bytes" as const;
  readonly vocabSize = 256;

  encode(text: string): number[] {
    return [...new TextEncoder().encode(text)];
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id > 255) throw new UsageError(`bad byte token ${id}`);
    }
    return Uint8Array.from(ids);
  }

  decode(ids: readonly number[]): string {
    return new TextDecoder().decode(this.decodeBytes(ids));
  }

  createDecoder(): { push(id: number): string; flush(): string } {
    const s = new Utf8Stream();
    return { push: (id) => s.push(this.decodeBytes([id])), flush: () => s.flush() };
  }
}
