/**
 * Hugging Face `tokenizer.json` tokenizers (e.g. the GPT-NeoX 20B tokenizer of the RWKV-4 Pile
 * models), through `npm:@huggingface/tokenizers`.
 * @module
 */

import { Tokenizer as HfTokenizerImpl } from "npm:@huggingface/tokenizers@0.2.0";
import { TokenizerError, UsageError } from "../errors.ts";
import type { Tokenizer } from "./types.ts";

const utf8 = new TextEncoder();

/** GPT-2's table from the printable characters of byte-level BPE vocabularies to bytes. */
function byteLevelTable(): Map<string, number> {
  // Printable bytes stand for themselves; the others are shifted to U+0100 and up, in order.
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 255 && b !== 173);
  const table = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table.set(String.fromCharCode(printable(b) ? b : 256 + shifted++), b);
  }
  return table;
}

/**
 * A `tokenizer.json` tokenizer. `decode` is the library's (special tokens included);
 * `decode([])` is "" (the library throws).
 * @example
 * ```ts
 * const json = JSON.parse(await Deno.readTextFile("20B_tokenizer.json"));
 * const tok = new HfTokenizer(json, "20B_tokenizer.json");
 * tok.encode("Hello world!"); // [12092, 1533, 2]
 * ```
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  readonly vocabSize: number;
  readonly #impl: HfTokenizerImpl;
  /** Token text of every id (vocabulary and added tokens). */
  readonly #tokenText: Map<number, string>;
  /** Set when the decoder is plain byte-level, so token text maps back to raw bytes. */
  readonly #byteOf: Map<string, number> | undefined;

  /** `json` is the parsed `tokenizer.json`; `file` names it in errors. */
  constructor(json: Record<string, unknown>, file = "tokenizer.json") {
    const model = json.model as { vocab?: unknown } | undefined;
    if (typeof model?.vocab !== "object" || model.vocab === null || Array.isArray(model.vocab)) {
      // Unigram models list [piece, score] pairs: not supported (no RWKV model uses one).
      throw new TokenizerError(`${file}: model.vocab is not a token → id object`);
    }
    try {
      this.#impl = new HfTokenizerImpl(json, {});
    } catch (e) {
      throw new TokenizerError(`${file}: not a usable tokenizer.json (${(e as Error).message})`, {
        cause: e,
      });
    }
    this.#tokenText = new Map();
    for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) {
      this.#tokenText.set(id, text);
    }
    const added = (json.added_tokens as { id: number; content: string }[] | undefined) ?? [];
    for (const a of added) this.#tokenText.set(a.id, a.content);
    if (this.#tokenText.size === 0) throw new TokenizerError(`${file}: empty vocabulary`);
    let max = 0;
    for (const id of this.#tokenText.keys()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const decoder = json.decoder as { type?: string } | null | undefined;
    this.#byteOf = decoder?.type === "ByteLevel" ? byteLevelTable() : undefined;
  }

  encode(text: string): number[] {
    if (text === "") return [];
    return [...this.#impl.encode(text).ids];
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return ""; // the library throws on []
    this.#check(ids);
    return this.#impl.decode([...ids]);
  }

  /**
   * For a byte-level decoder (GPT-NeoX 20B), the raw bytes of the tokens, so that one token's
   * byte count is exact even when it holds part of a character (bits-per-byte needs this).
   * For other decoders, the UTF-8 of {@link HfTokenizer.decode}.
   */
  decodeBytes(ids: readonly number[]): Uint8Array {
    if (!this.#byteOf) return utf8.encode(this.decode(ids));
    this.#check(ids);
    const out: number[] = [];
    for (const id of ids) {
      for (const ch of this.#tokenText.get(id)!) {
        const b = this.#byteOf.get(ch);
        if (b !== undefined) out.push(b);
        else for (const x of utf8.encode(ch)) out.push(x); // added tokens are plain text
      }
    }
    return Uint8Array.from(out);
  }

  #check(ids: readonly number[]): void {
    for (const id of ids) {
      if (!this.#tokenText.has(id)) {
        throw new UsageError(`token id ${id} is outside the vocabulary`);
      }
    }
  }

  /**
   * Streaming by difference, for any decoder: decode a short window of recent ids and emit what
   * it adds to the window's already-emitted text, but only once it no longer ends in U+FFFD (a
   * byte-level token that holds part of a character). The window starts a few ids back so
   * decoders that look at neighbours (leading-space rules, clean-up) see context.
   */
  createDecoder(): { push(id: number): string; flush(): string } {
    const ids: number[] = [];
    let prefixStart = 0; // window start: ids before it are done with
    let readStart = 0; // ids before this are already emitted
    const step = (final: boolean): string => {
      if (readStart === ids.length) return "";
      const prefix = this.decode(ids.slice(prefixStart, readStart));
      const text = this.decode(ids.slice(prefixStart));
      if (!final && (text.length <= prefix.length || text.endsWith("\uFFFD"))) return "";
      const piece = text.slice(prefix.length);
      prefixStart = readStart;
      readStart = ids.length;
      // Keep the list short: ids before the window are never read again.
      if (prefixStart > 64) {
        ids.splice(0, prefixStart);
        readStart -= prefixStart;
        prefixStart = 0;
      }
      return piece;
    };
    return {
      push: (id: number) => {
        this.#check([id]);
        ids.push(id);
        return step(false);
      },
      flush: () => step(true),
    };
  }
}
