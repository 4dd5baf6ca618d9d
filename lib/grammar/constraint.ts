/**
 * {@link Constraint}: one sequence's position in a grammar, over one tokenizer's tokens. It
 * masks the logits of the tokens that cannot continue, advances by the chosen token, and
 * reports forced runs and whether the output may or must end.
 * @module
 */

import type { Tokenizer } from "../tokenizer/types.ts";
import { GrammarError } from "./error.ts";
import { engineOf, type Grammar } from "./grammar.ts";
import { DEAD, type Engine } from "./matcher.ts";
import { TokenTrie } from "./trie.ts";

/** Most masks kept per engine and tokenizer (each is vocab / 8 bytes: 8 KiB for World). */
const MASK_CACHE = 1024;

/** Allowed-token bitsets by matcher state, per (engine, trie). */
const maskCaches = new WeakMap<Engine, WeakMap<TokenTrie, Map<number, Uint32Array>>>();

/**
 * Options of a {@link Constraint}.
 * @example
 * ```ts
 * import type { ConstraintOptions } from "./mod.ts";
 * const o: ConstraintOptions = { endToken: 0 }; // RWKV World's end of text
 * ```
 */
export interface ConstraintOptions {
  /**
   * The token that ends the output, allowed only where the grammar is complete. Default: 0
   * for World and Hugging Face tokenizers, none for the byte-level one (0 is the NUL byte
   * there). `null`: no end token.
   */
  endToken?: number | null;
}

/**
 * One sequence's state in a {@link Grammar}, over a tokenizer's token trie. Use it around a
 * sampler: {@link Constraint.mask} before drawing, {@link Constraint.accept} after, stop when
 * {@link Constraint.finished}; {@link Constraint.forced} gives tokens that need no drawing.
 * @example
 * ```ts
 * import { compileJsonSchema, Constraint } from "./mod.ts";
 * import { ByteTokenizer } from "../tokenizer/bytes.ts";
 *
 * const grammar = compileJsonSchema({ type: "boolean" });
 * const c = new Constraint(grammar, new ByteTokenizer());
 * const logits = new Float32Array(256);
 * c.mask(logits); // only " " (32), "t" (116) and "f" (102) stay finite
 * c.accept(116);
 * console.log(c.forced()); // [114, 117, 101]: "rue"
 * ```
 */
export class Constraint {
  /** The grammar followed. */
  readonly grammar: Grammar;
  /** The end token (undefined: none). */
  readonly endToken: number | undefined;
  #engine: Engine;
  readonly #trie: TokenTrie;
  readonly #tokenizer: Tokenizer;
  #state: number;
  #ended = false;

  /** Starts at the beginning of `grammar`, over `tokenizer`'s tokens. */
  constructor(grammar: Grammar, tokenizer: Tokenizer, options: ConstraintOptions = {}) {
    this.grammar = grammar;
    const end = options.endToken === undefined
      ? (tokenizer.kind === "bytes" ? undefined : 0)
      : options.endToken ?? undefined;
    if (end !== undefined && !(Number.isInteger(end) && end >= 0)) {
      throw new GrammarError(`endToken must be a token id, not ${end}`);
    }
    this.endToken = end;
    this.#tokenizer = tokenizer;
    this.#engine = engineOf(grammar);
    this.#trie = TokenTrie.of(tokenizer, end);
    this.#state = this.#engine.start;
  }

  /** True when the output so far is a whole match: the end token is allowed. */
  get complete(): boolean {
    return this.#ended || this.#engine.complete[this.#state] === 1;
  }

  /** True when nothing can follow (the grammar is complete and accepts no more bytes). */
  get finished(): boolean {
    return this.#ended || this.#engine.isFinal(this.#state);
  }

  /** An independent copy at the same position. */
  clone(): Constraint {
    const c = new Constraint(this.grammar, this.#tokenizer, { endToken: this.endToken ?? null });
    c.#engine = this.#engine;
    c.#state = this.#state;
    c.#ended = this.#ended;
    return c;
  }

  /**
   * Sets every logit whose token cannot continue the output to −Infinity (the end token is
   * left only when the output is complete; ids beyond the tokenizer's vocabulary are cut).
   * Throws {@link GrammarError} when no token at all can continue an incomplete output.
   */
  mask(logits: Float32Array): void {
    const n = logits.length;
    if (this.#ended) {
      logits.fill(-Infinity);
      return;
    }
    const bits = this.#allowed();
    const end = this.endToken;
    const keepEnd = end !== undefined && end < n && this.complete ? logits[end] : -Infinity;
    const vocab = Math.min(this.#trie.vocabSize, n);
    const words = vocab >> 5;
    for (let w = 0; w < words; w++) {
      const word = bits[w];
      if (word === -1) continue;
      const base = w << 5;
      if (word === 0) logits.fill(-Infinity, base, base + 32);
      else for (let k = 0; k < 32; k++) if (!((word >>> k) & 1)) logits[base + k] = -Infinity;
    }
    for (let i = words << 5; i < vocab; i++) {
      if (!((bits[i >> 5] >>> (i & 31)) & 1)) logits[i] = -Infinity;
    }
    if (vocab < n) logits.fill(-Infinity, vocab);
    if (end !== undefined && end < n) logits[end] = keepEnd;
  }

  /** The allowed-token bitset of the current state (memoized by state). */
  #allowed(): Int32Array {
    const engine = this.#engine, trie = this.#trie;
    let byTrie = maskCaches.get(engine);
    if (!byTrie) maskCaches.set(engine, byTrie = new WeakMap());
    let cache = byTrie.get(trie);
    if (!cache) byTrie.set(trie, cache = new Map());
    let bits = cache.get(this.#state);
    if (!bits) {
      bits = walk(engine, trie, this.#state);
      if (cache.size >= MASK_CACHE) cache.clear();
      cache.set(this.#state, bits);
      let any = this.complete && this.endToken !== undefined;
      for (let w = 0; w < bits.length && !any; w++) any = bits[w] !== 0;
      if (!any && !engine.isFinal(this.#state)) {
        throw new GrammarError("no token of the vocabulary can continue the grammar here");
      }
    }
    return new Int32Array(bits.buffer, bits.byteOffset, bits.length);
  }

  /** Whether `token` may come next. */
  allows(token: number): boolean {
    if (this.#ended) return false;
    if (token === this.endToken) return this.complete;
    if (!this.#trie.has(token)) return false;
    return this.#walkBytes(this.#trie.bytesOf(token)) !== DEAD;
  }

  #walkBytes(bytes: Uint8Array): number {
    let s = this.#state;
    for (let i = 0; i < bytes.length && s !== DEAD; i++) s = this.#engine.step(s, bytes[i]);
    return s;
  }

  /**
   * Advances past `token`. Throws {@link GrammarError} when the grammar does not allow it
   * (the position is then unchanged).
   */
  accept(token: number): void {
    if (this.#ended) throw new GrammarError(`token ${token} after the end of the output`);
    if (token === this.endToken) {
      if (!this.complete) {
        throw new GrammarError(`the end token ${token} before the output is complete`);
      }
      this.#ended = true;
      return;
    }
    if (!this.#trie.has(token)) {
      throw new GrammarError(`token ${token} cannot be part of a grammar's output`);
    }
    const bytes = this.#trie.bytesOf(token);
    const s = this.#walkBytes(bytes);
    if (s === DEAD) {
      const text = new TextDecoder().decode(bytes);
      throw new GrammarError(
        `token ${token} (${JSON.stringify(text)}) does not fit the grammar here`,
      );
    }
    this.#state = s;
  }

  /**
   * The shortest bytes that would make the output so far complete (empty when it is), or
   * undefined when none is found within a search budget. Useful to close an output that
   * `maxTokens` cut short, or to check that it can still be completed.
   */
  completion(): Uint8Array | undefined {
    if (this.#ended) return new Uint8Array(0);
    return this.#engine.shortestCompletion(this.#state);
  }

  /**
   * The run of tokens forced from here: the bytes the grammar allows alone (one possible byte
   * at a time, until a choice or a possible end), tokenized greedily by longest match. Empty
   * when the next token is a real choice. The tokens are not accepted yet.
   */
  forced(): number[] {
    if (this.#ended) return [];
    const engine = this.#engine;
    const bytes: number[] = [];
    for (let s = this.#state, b = engine.singleByte(s); b >= 0; b = engine.singleByte(s)) {
      bytes.push(b);
      s = engine.step(s, b);
      if (bytes.length >= 4096) break;
    }
    const out: number[] = [];
    const all = Uint8Array.from(bytes);
    for (let i = 0; i < all.length;) {
      const t = this.#trie.longestPrefix(all.subarray(i));
      if (t < 0) break;
      out.push(t);
      i += this.#trie.bytesOf(t).length;
    }
    return out;
  }
}

/** The allowed tokens of state `start`: a walk of the trie driven by the matcher. */
export function walk(engine: Engine, trie: TokenTrie, start: number): Uint32Array {
  const bits = new Uint32Array((trie.vocabSize + 31) >> 5);
  const at = new Int32Array(trie.maxDepth + 1);
  at[0] = start;
  const { byte, depth, skip, token, size } = trie;
  let trans = engine.trans;
  for (let i = 0; i < size;) {
    const d = depth[i];
    const from = at[d - 1];
    let s = trans[from * 256 + byte[i]];
    if (s === -2) {
      s = engine.step(from, byte[i]);
      trans = engine.trans; // the table may have grown
    }
    if (s === DEAD) {
      i = skip[i];
      continue;
    }
    at[d] = s;
    const t = token[i];
    if (t >= 0) bits[t >> 5] |= 1 << (t & 31);
    else if (t < -1) { for (const x of trie.extra.get(i)!) bits[x >> 5] |= 1 << (x & 31); }
    i++;
  }
  return bits;
}
