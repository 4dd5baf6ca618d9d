/**
 * The interface every tokenizer implements.
 * @module
 */

/**
 * Text ↔ token ids.
 * @example
 * ```ts
 * import { loadTokenizer } from "./mod.ts";
 * const tok: Tokenizer = await loadTokenizer("bytes");
 * tok.decode(tok.encode("hi")); // "hi"
 * ```
 */
export interface Tokenizer {
  /** Which kind of tokenizer it is. */
  readonly kind: "world" | "hf" | "bytes";
  /** Ids are 0 … vocabSize − 1. */
  readonly vocabSize: number;
  /** Text to ids. */
  encode(text: string): number[];
  /** Ids to text; `decode([])` is "", invalid UTF-8 becomes U+FFFD as with `TextDecoder`. */
  decode(ids: readonly number[]): string;
  /**
   * Ids to the raw bytes they stand for (World, bytes, byte-level HF); for other HF decoders,
   * the UTF-8 of {@link Tokenizer.decode}.
   */
  decodeBytes(ids: readonly number[]): Uint8Array;
  /**
   * A streaming decoder: `push(id)` returns the text completed by that token (never half a
   * UTF-8 character), `flush()` the rest.
   */
  createDecoder(): { push(id: number): string; flush(): string };
}
