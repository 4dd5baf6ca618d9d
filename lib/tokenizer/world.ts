/**
 * The RWKV "World" tokenizer (`rwkv_vocab_v20230424.txt`): greedy longest match over UTF-8
 * bytes, as the official TRIE tokenizer does.
 * @module
 */

import { TokenizerError, UsageError } from "../errors.ts";
import type { Tokenizer } from "./mod.ts";
import { Utf8Stream } from "./_utf8.ts";

const enc = new TextEncoder();

/** Parses one Python literal (`'…'`, `"…"`, `b'…'`) into bytes. */
function parseLiteral(src: string, where: string): Uint8Array {
  let s = src.trim();
  const isBytes = s.startsWith("b");
  if (isBytes) s = s.slice(1);
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) {
    throw new TokenizerError(`${where}: not a Python string literal: ${src}`);
  }
  const body = s.slice(1, -1);
  const out: number[] = [];
  const pushCode = (cp: number) => {
    if (isBytes) out.push(cp & 255);
    else out.push(...enc.encode(String.fromCodePoint(cp)));
  };
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== "\\") {
      const cp = body.codePointAt(i)!;
      if (cp > 0xffff) i++;
      if (isBytes) out.push(cp & 255);
      else out.push(...enc.encode(String.fromCodePoint(cp)));
      continue;
    }
    const e = body[++i];
    const hex = (n: number) => {
      const h = body.slice(i + 1, i + 1 + n);
      if (!/^[0-9a-fA-F]+$/.test(h) || h.length !== n) {
        throw new TokenizerError(`${where}: bad escape \\${e}${h}`);
      }
      i += n;
      return parseInt(h, 16);
    };
    switch (e) {
      case "n":
        out.push(10);
        break;
      case "t":
        out.push(9);
        break;
      case "r":
        out.push(13);
        break;
      case "0":
        out.push(0);
        break;
      case "a":
        out.push(7);
        break;
      case "b":
        out.push(8);
        break;
      case "f":
        out.push(12);
        break;
      case "v":
        out.push(11);
        break;
      case "\\":
      case "'":
      case '"':
        out.push(e.charCodeAt(0));
        break;
      case "x":
        pushCode(hex(2));
        break;
      case "u":
        pushCode(hex(4));
        break;
      case "U":
        pushCode(hex(8));
        break;
      default:
        throw new TokenizerError(`${where}: unknown escape \\${e}`);
    }
  }
  return Uint8Array.from(out);
}

/** Greedy longest-match tokenizer over a byte trie. */
export class WorldTokenizer implements Tokenizer {
  readonly kind = "world" as const;
  readonly vocabSize: number;
  /** Bytes of each token id. */
  readonly #tokens: Uint8Array[];
  /** Trie edges: key = node × 256 + byte → child node. */
  readonly #edges = new Map<number, number>();
  /** Root's children, direct (the hottest lookups). */
  readonly #root = new Int32Array(256).fill(-1);
  /** Token id ending at each node (0 = none). */
  #ids: Int32Array;

  private constructor(tokens: Uint8Array[]) {
    this.#tokens = tokens;
    this.vocabSize = tokens.length;
    let nodes = 1;
    const ids: number[] = [0];
    for (let id = 1; id < tokens.length; id++) {
      const t = tokens[id];
      if (!t || t.length === 0) continue;
      let node = 0;
      for (let i = 0; i < t.length; i++) {
        const b = t[i];
        let next = node === 0 ? this.#root[b] : (this.#edges.get(node * 256 + b) ?? -1);
        if (next < 0) {
          next = nodes++;
          ids.push(0);
          if (node === 0) this.#root[b] = next;
          else this.#edges.set(node * 256 + b, next);
        }
        node = next;
      }
      ids[node] = id;
    }
    this.#ids = Int32Array.from(ids);
  }

  /** Parses a vocabulary file's text (`<id> <python literal> <byte length>` per line). */
  static parse(text: string, file = "vocab"): WorldTokenizer {
    const tokens: Uint8Array[] = [];
    const lines = text.split("\n");
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n].replace(/\r$/, "");
      if (!line.trim()) continue;
      const where = `${file}:${n + 1}`;
      const a = line.indexOf(" "), b = line.lastIndexOf(" ");
      if (a < 0 || b <= a) throw new TokenizerError(`${where}: expected "<id> <literal> <length>"`);
      const id = Number(line.slice(0, a)), len = Number(line.slice(b + 1));
      if (!Number.isInteger(id) || id < 1 || id > 1 << 24) {
        throw new TokenizerError(`${where}: bad token id ${line.slice(0, a)}`);
      }
      const bytes = parseLiteral(line.slice(a + 1, b), where);
      if (bytes.length !== len) {
        throw new TokenizerError(`${where}: token is ${bytes.length} bytes, line says ${len}`);
      }
      tokens[id] = bytes;
    }
    if (tokens.length === 0) throw new TokenizerError(`${file}: no tokens`);
    tokens[0] = new Uint8Array(0); // id 0 is end-of-text
    for (let i = 0; i < tokens.length; i++) tokens[i] ??= new Uint8Array(0);
    return new WorldTokenizer(tokens);
  }

  /** Encodes bytes by greedy longest match. */
  encodeBytes(src: Uint8Array): number[] {
    const out: number[] = [];
    const root = this.#root, edges = this.#edges, ids = this.#ids;
    let i = 0;
    while (i < src.length) {
      let node = root[src[i]];
      if (node < 0) throw new UsageError(`byte 0x${src[i].toString(16)} is not in the vocabulary`);
      let best = ids[node], bestLen = 1, j = i + 1;
      while (j < src.length) {
        const next = edges.get(node * 256 + src[j]);
        if (next === undefined) break;
        node = next;
        j++;
        if (ids[node]) {
          best = ids[node];
          bestLen = j - i;
        }
      }
      out.push(best);
      i += bestLen;
    }
    return out;
  }

  encode(text: string): number[] {
    return this.encodeBytes(enc.encode(text));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    let n = 0;
    for (const id of ids) {
      const t = this.#tokens[id];
      if (!t) throw new UsageError(`token id ${id} is outside the vocabulary`);
      n += t.length;
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const id of ids) {
      out.set(this.#tokens[id], o);
      o += this.#tokens[id].length;
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return new TextDecoder().decode(this.decodeBytes(ids));
  }

  createDecoder(): { push(id: number): string; flush(): string } {
    const s = new Utf8Stream();
    return { push: (id) => s.push(this.decodeBytes([id])), flush: () => s.flush() };
  }
}
