/**
 * Hugging Face `tokenizer.json` (e.g. GPT-NeoX 20B of the RWKV-4 Pile models), through
 * `@huggingface/tokenizers`.
 * @module
 */

import { Tokenizer as HfTokenizerImpl } from "npm:@huggingface/tokenizers@0.2.0";
import { TokenizerError, UsageError } from "../errors.ts";
import type { Tokenizer } from "./mod.ts";
import { Utf8Stream } from "./_utf8.ts";

/** GPT-2's byte ↔ printable-character table used by byte-level BPE vocabularies. */
function byteLevelTable(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCharCode(cs[i]), b]));
}

/** A `tokenizer.json` tokenizer. */
export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  readonly vocabSize: number;
  readonly #impl: HfTokenizerImpl;
  readonly #idToToken: Map<number, string>;
  readonly #byteLevel: Map<string, number> | undefined;

  constructor(json: Record<string, unknown>, file = "tokenizer.json") {
    try {
      this.#impl = new HfTokenizerImpl(json as never, {} as never);
    } catch (e) {
      throw new TokenizerError(`${file}: not a tokenizer.json (${(e as Error).message})`);
    }
    const model = json.model as { vocab?: Record<string, number> } | undefined;
    const added = (json.added_tokens as { id: number; content: string }[] | undefined) ?? [];
    this.#idToToken = new Map();
    for (const [tok, id] of Object.entries(model?.vocab ?? {})) this.#idToToken.set(id, tok);
    for (const a of added) this.#idToToken.set(a.id, a.content);
    if (this.#idToToken.size === 0) throw new TokenizerError(`${file}: empty vocabulary`);
    this.vocabSize = Math.max(...this.#idToToken.keys()) + 1;
    const decoder = json.decoder as { type?: string } | null | undefined;
    this.#byteLevel = decoder?.type === "ByteLevel" ? byteLevelTable() : undefined;
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

  decodeBytes(ids: readonly number[]): Uint8Array {
    this.#check(ids);
    if (!this.#byteLevel) return new TextEncoder().encode(this.decode(ids));
    const out: number[] = [];
    for (const id of ids) {
      for (const ch of this.#idToToken.get(id)!) {
        const b = this.#byteLevel.get(ch);
        if (b === undefined) out.push(...new TextEncoder().encode(ch)); // added tokens
        else out.push(b);
      }
    }
    return Uint8Array.from(out);
  }

  #check(ids: readonly number[]) {
    for (const id of ids) {
      if (!this.#idToToken.has(id)) {
        throw new UsageError(`token id ${id} is outside the vocabulary`);
      }
    }
  }

  createDecoder(): { push(id: number): string; flush(): string } {
    const s = new Utf8Stream();
    return { push: (id) => s.push(this.decodeBytes([id])), flush: () => s.flush() };
  }
}
