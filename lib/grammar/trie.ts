/**
 * The token trie of a tokenizer, flattened in depth-first order for fast walks: node `i` has
 * its byte, its depth, the index just past its subtree (to skip it when the grammar refuses the
 * byte) and the token ending there. Built once per tokenizer and end token, then cached.
 * @module
 */

import type { Tokenizer } from "../tokenizer/types.ts";

/** A tokenizer's tokens as a flattened byte trie. */
export class TokenTrie {
  /** Ids are 0 … vocabSize − 1. */
  readonly vocabSize: number;
  /** Number of nodes (the root is not stored). */
  readonly size: number;
  readonly byte: Uint8Array;
  readonly depth: Uint16Array;
  /** Index just past the node's subtree. */
  readonly skip: Int32Array;
  /** The token ending at the node, or -1; -2 - id when more tokens end there (see `extra`). */
  readonly token: Int32Array;
  /** Every token of a node where several end (rare: duplicates in a vocabulary). */
  readonly extra: ReadonlyMap<number, readonly number[]>;
  readonly maxDepth: number;
  /** Bytes of every token: `bytes[start[id] .. start[id + 1])`. */
  readonly #bytes: Uint8Array;
  readonly #start: Int32Array;
  /** Ids left out of the trie: the end token and tokens without bytes. */
  readonly excluded: ReadonlySet<number>;
  /** Node of every token, or -1. */
  readonly #nodeOf: Int32Array;

  private constructor(tokenizer: Tokenizer, endToken: number | undefined) {
    const n = tokenizer.vocabSize;
    this.vocabSize = n;
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (let id = 0; id < n; id++) {
      let b: Uint8Array;
      try {
        b = id === endToken ? new Uint8Array(0) : tokenizer.decodeBytes([id]);
      } catch {
        b = new Uint8Array(0); // an id the tokenizer lacks (a gap in an HF vocabulary)
      }
      pieces.push(b);
      total += b.length;
    }
    this.#bytes = new Uint8Array(total);
    this.#start = new Int32Array(n + 1);
    for (let id = 0, o = 0; id < n; id++) {
      this.#bytes.set(pieces[id], o);
      o += pieces[id].length;
      this.#start[id + 1] = o;
    }
    const excluded = new Set<number>();
    const order: number[] = [];
    for (let id = 0; id < n; id++) {
      if (pieces[id].length === 0) excluded.add(id);
      else order.push(id);
    }
    this.excluded = excluded;
    order.sort((a, b) => compareBytes(pieces[a], pieces[b]) || a - b);

    // Nodes in depth-first order straight from the sorted tokens: each token adds the nodes
    // past its common prefix with the one before.
    const byte: number[] = [], depth: number[] = [], token: number[] = [], skip: number[] = [];
    const extra = new Map<number, number[]>();
    const nodeOf = new Int32Array(n).fill(-1);
    const path: number[] = []; // node at each depth of the previous token
    let prev: Uint8Array = new Uint8Array(0);
    let maxDepth = 0;
    for (const id of order) {
      const t = pieces[id];
      let common = 0;
      while (common < t.length && common < prev.length && t[common] === prev[common]) common++;
      // close the previous token's nodes below the common prefix
      for (let d = path.length; d > common; d--) skip[path[d - 1]] = byte.length;
      path.length = common;
      if (common === t.length) {
        // same bytes as the previous token
        const node = path[common - 1];
        const list = extra.get(node) ?? [];
        list.push(id);
        extra.set(node, list);
        nodeOf[id] = node;
        continue;
      }
      for (let d = common; d < t.length; d++) {
        path.push(byte.length);
        byte.push(t[d]);
        depth.push(d + 1);
        token.push(-1);
        skip.push(0);
      }
      token[byte.length - 1] = id;
      nodeOf[id] = byte.length - 1;
      maxDepth = Math.max(maxDepth, t.length);
      prev = t;
    }
    for (let d = path.length; d > 0; d--) skip[path[d - 1]] = byte.length;
    for (const [node, more] of extra) more.unshift(token[node]), token[node] = -2 - token[node];
    this.size = byte.length;
    this.byte = Uint8Array.from(byte);
    this.depth = Uint16Array.from(depth);
    this.skip = Int32Array.from(skip);
    this.token = Int32Array.from(token);
    this.extra = extra;
    this.maxDepth = maxDepth;
    this.#nodeOf = nodeOf;
  }

  /** The bytes of token `id` (empty for excluded ids). */
  bytesOf(id: number): Uint8Array {
    return this.#bytes.subarray(this.#start[id], this.#start[id + 1]);
  }

  /** Whether `id` is a token of the trie. */
  has(id: number): boolean {
    return id >= 0 && id < this.vocabSize && this.#nodeOf[id] >= 0;
  }

  /** The longest token that is a prefix of `bytes`, or -1 (ties: the lowest id). */
  longestPrefix(bytes: Uint8Array): number {
    // Descend from the root: a node's children follow it, each child subtree skipped past.
    let best = -1, i = 0, d = 0;
    const end = this.size;
    while (i < end && d < bytes.length) {
      // find the child at depth d + 1 with byte bytes[d] among the siblings starting at i
      while (i < end && this.depth[i] === d + 1 && this.byte[i] !== bytes[d]) i = this.skip[i];
      if (i >= end || this.depth[i] !== d + 1) break;
      const t = this.token[i];
      if (t >= 0) best = t;
      else if (t < -1) best = Math.min(...this.extra.get(i)!);
      d++;
      i++;
    }
    return best;
  }

  static #cache = new WeakMap<Tokenizer, Map<number, TokenTrie>>();

  /** The trie of `tokenizer` without `endToken` (cached). */
  static of(tokenizer: Tokenizer, endToken: number | undefined): TokenTrie {
    let byEnd = TokenTrie.#cache.get(tokenizer);
    if (!byEnd) TokenTrie.#cache.set(tokenizer, byEnd = new Map());
    const key = endToken ?? -1;
    let trie = byEnd.get(key);
    if (!trie) byEnd.set(key, trie = new TokenTrie(tokenizer, endToken));
    return trie;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
