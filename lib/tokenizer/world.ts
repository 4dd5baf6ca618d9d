/**
 * The RWKV "World" tokenizer (`rwkv_vocab_v20230424.txt`, used by RWKV-5/6/7 World models):
 * greedy longest match over UTF-8 bytes, exactly as the official `TRIE_TOKENIZER` of
 * ChatRWKV's `rwkv` package does.
 *
 * Vocabulary file: one token a line, `<id> <python literal> <byte length>`, where the literal is
 * a `str` (`'…'` or `"…"`, stored as its UTF-8 bytes) or `bytes` (`b'…'`, for tokens that are
 * not whole UTF-8 characters). Id 0 is not in the file: it is end-of-text and decodes to "".
 * @module
 */

import { TokenizerError, UsageError } from "../errors.ts";
import type { Tokenizer } from "./types.ts";
import { decodeUtf8, incompleteTail, Utf8Stream } from "./_utf8.ts";

const utf8 = new TextEncoder();

/** Python escapes that stand for one fixed byte. */
const SIMPLE_ESCAPES: Record<string, number> = {
  n: 10,
  t: 9,
  r: 13,
  a: 7,
  b: 8,
  f: 12,
  v: 11,
  "0": 0,
  "\\": 92,
  "'": 39,
  '"': 34,
};

/**
 * Parses one Python `str` or `bytes` literal (as `repr()` writes them) into bytes.
 * `where` names the file and line for errors.
 */
function parseLiteral(src: string, where: string): Uint8Array {
  const isBytes = src.startsWith("b");
  const body0 = isBytes ? 1 : 0;
  const q = src[body0];
  if ((q !== "'" && q !== '"') || src.length < body0 + 2 || src[src.length - 1] !== q) {
    throw new TokenizerError(`${where}: not a Python string literal: ${src}`);
  }
  const body = src.slice(body0 + 1, -1);
  // Fast path, most lines: a str without escapes is just its UTF-8.
  if (!isBytes && !body.includes("\\")) return utf8.encode(body);

  const out: number[] = [];
  const pushCodePoint = (cp: number) => {
    if (isBytes) {
      out.push(cp); // only ASCII characters and \x escapes get here: always < 256
    } else if (cp < 0x80) {
      out.push(cp);
    } else {
      for (const b of utf8.encode(String.fromCodePoint(cp))) out.push(b);
    }
  };
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== "\\") {
      const cp = body.codePointAt(i)!;
      if (cp > 0xffff) i++; // a surrogate pair is one code point
      if (isBytes && cp > 0x7f) {
        throw new TokenizerError(`${where}: non-ASCII character in a bytes literal: ${src}`);
      }
      pushCodePoint(cp);
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw new TokenizerError(`${where}: literal ends in a backslash: ${src}`);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out.push(simple);
      continue;
    }
    const digits = e === "x" ? 2 : e === "u" && !isBytes ? 4 : e === "U" && !isBytes ? 8 : 0;
    if (digits === 0) throw new TokenizerError(`${where}: unknown escape \\${e} in ${src}`);
    const hex = body.slice(i + 1, i + 1 + digits);
    if (hex.length !== digits || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw new TokenizerError(`${where}: bad escape \\${e}${hex} in ${src}`);
    }
    i += digits;
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff) throw new TokenizerError(`${where}: bad code point \\${e}${hex}`);
    pushCodePoint(cp);
  }
  return Uint8Array.from(out);
}

/**
 * Greedy longest-match tokenizer over a byte trie, for the RWKV World vocabulary.
 * Build it with {@link WorldTokenizer.parse} or through `loadTokenizer`.
 * @example
 * ```ts
 * const text = await Deno.readTextFile("rwkv_vocab_v20230424.txt");
 * const tok = WorldTokenizer.parse(text, "rwkv_vocab_v20230424.txt");
 * tok.encode("Hello world!"); // [33155, 40213, 34]
 * ```
 */
export class WorldTokenizer implements Tokenizer {
  readonly kind = "world" as const;
  /** Largest id in the file + 1 (65530 for `rwkv_vocab_v20230424.txt`; models pad to 65536). */
  readonly vocabSize: number;

  // Token bytes, all in one buffer: token `id` is bytes[start[id] .. start[id + 1]).
  readonly #bytes: Uint8Array;
  readonly #start: Int32Array; // (vocabSize + 1)

  // The trie. Node 0 is the root; `#tokenAt[node]` is the id of the token ending there (0: none).
  // The root's 256 children are a plain table (every encode step starts there); deeper edges
  // live in an open-addressing hash table keyed by `node << 8 | byte`, in typed arrays so the
  // hot loop touches no JS objects. This is several times faster than a Map of edges and far
  // smaller than 256 slots per node.
  readonly #rootChild = new Int32Array(256).fill(-1);
  readonly #tokenAt: Int32Array;
  readonly #edgeKey: Int32Array; // 0 = empty slot (a real key is ≥ 256: nodes ≥ 1)
  readonly #edgeChild: Int32Array;
  readonly #edgeShift: number;

  private constructor(tokens: readonly Uint8Array[]) {
    this.vocabSize = tokens.length;
    let total = 0;
    for (const t of tokens) total += t.length;
    this.#bytes = new Uint8Array(total);
    this.#start = new Int32Array(tokens.length + 1);
    for (let id = 0, o = 0; id < tokens.length; id++) {
      this.#start[id] = o;
      this.#bytes.set(tokens[id], o);
      o += tokens[id].length;
      this.#start[id + 1] = o;
    }

    // At most one edge per token byte, so the table never fills beyond half.
    let size = 1024;
    while (size < 2 * total) size *= 2;
    this.#edgeKey = new Int32Array(size);
    this.#edgeChild = new Int32Array(size);
    this.#edgeShift = 32 - Math.log2(size);
    const tokenAt = new Int32Array(total + 1);
    let nodes = 1;
    for (let id = 1; id < tokens.length; id++) {
      const t = tokens[id];
      if (t.length === 0) continue;
      let node = this.#rootChild[t[0]];
      if (node < 0) node = this.#rootChild[t[0]] = nodes++;
      for (let i = 1; i < t.length; i++) {
        let next = this.#child(node, t[i]);
        if (next < 0) {
          next = nodes++;
          this.#addEdge(node, t[i], next);
        }
        node = next;
      }
      tokenAt[node] = id;
    }
    this.#tokenAt = tokenAt.slice(0, nodes);
  }

  #slot(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.#edgeShift;
  }

  #child(node: number, byte: number): number {
    const key = (node << 8) | byte, mask = this.#edgeKey.length - 1;
    for (let h = this.#slot(key);; h = (h + 1) & mask) {
      const k = this.#edgeKey[h];
      if (k === key) return this.#edgeChild[h];
      if (k === 0) return -1;
    }
  }

  #addEdge(node: number, byte: number, child: number): void {
    const key = (node << 8) | byte, mask = this.#edgeKey.length - 1;
    let h = this.#slot(key);
    while (this.#edgeKey[h] !== 0) h = (h + 1) & mask;
    this.#edgeKey[h] = key;
    this.#edgeChild[h] = child;
  }

  /**
   * A World tokenizer over the given token bytes: token `id` is `tokens[id]`; empty tokens (id 0,
   * control and unused ones) are never produced by encoding and decode to nothing.
   * @example
   * ```ts
   * const tok = WorldTokenizer.fromTokens([new Uint8Array(0), Uint8Array.of(97)]);
   * tok.encode("aa"); // [1, 1]
   * ```
   */
  static fromTokens(tokens: readonly Uint8Array[]): WorldTokenizer {
    return new WorldTokenizer(tokens);
  }

  /**
   * Parses the text of a vocabulary file. Errors name `file` and the line.
   * @example
   * ```ts
   * const tok = WorldTokenizer.parse("1 'a' 1\n2 'b' 1\n3 'ab' 2\n", "tiny.txt");
   * tok.encode("abba"); // [3, 2, 1]
   * ```
   */
  static parse(text: string, file = "vocab"): WorldTokenizer {
    const tokens: Uint8Array[] = [];
    let lineNo = 0;
    for (let pos = 0; pos < text.length;) {
      let end = text.indexOf("\n", pos);
      if (end < 0) end = text.length;
      const line = text.slice(pos, text[end - 1] === "\r" ? end - 1 : end);
      pos = end + 1;
      lineNo++;
      if (line.trim() === "") continue;
      const where = `${file}:${lineNo}`;
      // The literal may itself hold spaces: the id ends at the first, the length starts after the last.
      const a = line.indexOf(" "), b = line.lastIndexOf(" ");
      if (a <= 0 || b <= a + 1) {
        throw new TokenizerError(`${where}: expected "<id> <literal> <byte length>", got ${line}`);
      }
      const idText = line.slice(0, a), lenText = line.slice(b + 1);
      const id = Number(idText), len = Number(lenText);
      if (!/^\d+$/.test(idText) || id < 1 || id >= 1 << 24) {
        throw new TokenizerError(`${where}: bad token id ${JSON.stringify(idText)}`);
      }
      if (!/^\d+$/.test(lenText)) {
        throw new TokenizerError(`${where}: bad byte length ${JSON.stringify(lenText)}`);
      }
      const bytes = parseLiteral(line.slice(a + 1, b), where);
      if (bytes.length !== len) {
        throw new TokenizerError(`${where}: token is ${bytes.length} bytes, line says ${len}`);
      }
      if (bytes.length === 0) throw new TokenizerError(`${where}: empty token`);
      if (tokens[id] !== undefined) throw new TokenizerError(`${where}: token id ${id} repeated`);
      tokens[id] = bytes;
    }
    if (tokens.length === 0) throw new TokenizerError(`${file}: no tokens in the vocabulary`);
    const empty = new Uint8Array(0);
    for (let i = 0; i < tokens.length; i++) tokens[i] ??= empty; // id 0 (end-of-text) and gaps
    return new WorldTokenizer(tokens);
  }

  /**
   * Encodes UTF-8 bytes by greedy longest match. The hot function of tokenizing.
   * @example
   * ```ts
   * const tok = WorldTokenizer.parse(await Deno.readTextFile("rwkv_vocab_v20230424.txt"));
   * tok.encodeBytes(new TextEncoder().encode("Hello")); // [33155]
   * ```
   */
  encodeBytes(src: Uint8Array): number[] {
    const out: number[] = [];
    const rootChild = this.#rootChild, tokenAt = this.#tokenAt;
    const keys = this.#edgeKey, children = this.#edgeChild;
    const shift = this.#edgeShift, mask = keys.length - 1;
    const n = src.length;
    let i = 0;
    while (i < n) {
      let node = rootChild[src[i]];
      if (node < 0) {
        throw new UsageError(`byte 0x${src[i].toString(16)} has no token in the vocabulary`);
      }
      let best = tokenAt[node], bestEnd = i + 1;
      for (let j = i + 1; j < n; j++) {
        const key = (node << 8) | src[j];
        let h = Math.imul(key, 0x9e3779b1) >>> shift;
        let k = keys[h];
        while (k !== key && k !== 0) {
          h = (h + 1) & mask;
          k = keys[h];
        }
        if (k === 0) break; // no longer token continues here
        node = children[h];
        const id = tokenAt[node];
        if (id !== 0) {
          best = id;
          bestEnd = j + 1;
        }
      }
      if (best === 0) {
        throw new UsageError(`byte 0x${src[i].toString(16)} has no token in the vocabulary`);
      }
      out.push(best);
      i = bestEnd;
    }
    return out;
  }

  encode(text: string): number[] {
    return this.encodeBytes(utf8.encode(text));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    const start = this.#start, bytes = this.#bytes, vocabSize = this.vocabSize;
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < vocabSize && id === Math.floor(id))) {
        throw new UsageError(`token id ${id} is outside the vocabulary (0 … ${vocabSize - 1})`);
      }
      n += start[id + 1] - start[id];
    }
    const out = new Uint8Array(n);
    // Tokens are a few bytes: a plain loop beats a subarray + set per token.
    for (let i = 0, o = 0; i < ids.length; i++) {
      for (let k = start[ids[i]], end = start[ids[i] + 1]; k < end; k++) out[o++] = bytes[k];
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return decodeUtf8(this.decodeBytes(ids));
  }

  createDecoder(): { push(id: number): string; flush(): string } {
    const s = new Utf8Stream();
    const start = this.#start;
    return {
      push: (id) => {
        if (!(id >= 0 && id < this.vocabSize && id === Math.floor(id))) this.decodeBytes([id]); // throws
        if (!s.pending) {
          const whole = this.#wholeText(id);
          if (whole !== undefined) return whole;
        }
        return s.push(this.#bytes.subarray(start[id], start[id + 1]));
      },
      flush: () => s.flush(),
    };
  }

  /** Text of tokens made of whole characters (most of them), cached: streaming's fast path. */
  #textCache: (string | null | undefined)[] = [];
  #wholeText(id: number): string | undefined {
    let t = this.#textCache[id];
    if (t === undefined) {
      const b = this.#bytes.subarray(this.#start[id], this.#start[id + 1]);
      const text = decodeUtf8(b);
      const whole = b.length > 0 && (b[0] & 0xc0) !== 0x80 && incompleteTail(b) === 0 &&
        !text.includes("\uFFFD");
      t = this.#textCache[id] = whole ? text : null;
    }
    return t ?? undefined;
  }
}
