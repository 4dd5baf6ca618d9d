/**
 * The tokenizer a GGUF file carries (`tokenizer.ggml.*`), for llama.cpp's RWKV models:
 * `tokenizer.ggml.model = "rwkv"` with `tokenizer.ggml.tokens`, each token the text of Python's
 * `repr()` of its bytes without the `b'…'` (llama.cpp's `_set_vocab_rwkv_world`: `\xNN`, `\t`,
 * `\n`, `\r`, `\\`, `\'` escapes, printable ASCII as itself), becomes our World tokenizer
 * (greedy longest match); a vocabulary whose token i is the byte i becomes the byte tokenizer.
 * Control and unused tokens (`tokenizer.ggml.token_type` 3 and 5: `<s>`, `[PAD…]`) are never
 * produced by encoding and decode to nothing, as in the official tokenizer.
 * @module
 */

import { TokenizerError } from "../errors.ts";
import { readGguf } from "../formats/gguf.ts";
import { ByteTokenizer } from "./bytes.ts";
import type { Tokenizer } from "./types.ts";
import { WorldTokenizer } from "./world.ts";

/**
 * What a GGUF file says of its tokenizer and chat.
 * @example
 * ```ts
 * const { tokenizer, chatTemplate, eotToken } = await loadGgufTokenizer("model.gguf");
 * ```
 */
export interface GgufTokenizer {
  /** The tokenizer. */
  readonly tokenizer: Tokenizer;
  /** `tokenizer.chat_template` (llama.cpp's template name or Jinja text), when present. */
  readonly chatTemplate?: string;
  /** `tokenizer.ggml.eot_token_id`: the token that ends a turn (RWKV: 261, "\n\n"). */
  readonly eotToken?: number;
  /** `tokenizer.ggml.eos_token_id`. */
  readonly eosToken?: number;
}

const HEX = /^[0-9a-fA-F]{2}$/;
const utf8 = new TextEncoder();

/**
 * The bytes of one RWKV token as llama.cpp's converter wrote it (Python's `repr()` of the bytes
 * without `b'` and `'`). A backslash not followed by a known escape is kept as itself.
 * @example
 * ```ts
 * import { unescapeRwkvToken } from "./gguf.ts";
 * console.log(unescapeRwkvToken("\\xe4\\xb8\\x80")); // Uint8Array [228, 184, 128]
 * ```
 */
export function unescapeRwkvToken(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c && i + 1 < text.length) {
      const n = text[i + 1];
      const simple =
        ({ "\\": 0x5c, "'": 0x27, '"': 0x22, t: 9, n: 10, r: 13 } as Record<string, number>)[n];
      if (simple !== undefined) {
        out.push(simple);
        i++;
        continue;
      }
      if (n === "x" && HEX.test(text.slice(i + 2, i + 4))) {
        out.push(parseInt(text.slice(i + 2, i + 4), 16));
        i += 3;
        continue;
      }
    }
    if (c < 0x80) out.push(c);
    else {
      // not something repr() writes, but a writer may store plain UTF-8 text
      const cp = text.codePointAt(i)!;
      out.push(...utf8.encode(String.fromCodePoint(cp)));
      if (cp > 0xffff) i++;
    }
  }
  return Uint8Array.from(out);
}

/**
 * The tokenizer described by GGUF metadata (`Checkpoint.metadata` of a GGUF file, or
 * `GgufFile.metadata`); a TokenizerError naming `file` and the key when it is missing or not one
 * we read.
 * @example
 * ```ts
 * import { openCheckpoint } from "../formats/open.ts";
 * const ck = await openCheckpoint("model.gguf");
 * const { tokenizer } = tokenizerFromGguf(ck.metadata, ck.path);
 * ```
 */
export function tokenizerFromGguf(
  metadata: Readonly<Record<string, unknown>> | ReadonlyMap<string, unknown>,
  file = "model.gguf",
): GgufTokenizer {
  const get = (k: string) =>
    metadata instanceof Map ? metadata.get(k) : (metadata as Record<string, unknown>)[k];
  const model = get("tokenizer.ggml.model");
  if (model === undefined) {
    throw new TokenizerError(`${file}: tokenizer.ggml.model: the file carries no tokenizer`);
  }
  if (model !== "rwkv") {
    throw new TokenizerError(
      `${file}: tokenizer.ggml.model: ${
        JSON.stringify(model)
      } is not read (only llama.cpp's "rwkv"); pass --tokenizer`,
    );
  }
  const tokens = get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.some((t) => typeof t !== "string")) {
    throw new TokenizerError(`${file}: tokenizer.ggml.tokens: expected a list of strings`);
  }
  const types = get("tokenizer.ggml.token_type");
  const typeOf = (i: number) =>
    types && typeof types === "object" && "length" in types
      ? Number((types as ArrayLike<number>)[i])
      : 1;
  const bytes = (tokens as string[]).map((t, i) => {
    const ty = typeOf(i);
    return ty === 3 || ty === 5 ? new Uint8Array(0) : unescapeRwkvToken(t);
  });
  const byteVocab = bytes.length === 256 && bytes.every((b, i) => b.length === 1 && b[0] === i);
  const id = (k: string) => {
    const v = get(k);
    return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < bytes.length
      ? v
      : undefined;
  };
  const template = get("tokenizer.chat_template");
  return {
    tokenizer: byteVocab ? new ByteTokenizer() : WorldTokenizer.fromTokens(bytes),
    chatTemplate: typeof template === "string" ? template : undefined,
    eotToken: id("tokenizer.ggml.eot_token_id"),
    eosToken: id("tokenizer.ggml.eos_token_id"),
  };
}

/**
 * Reads the tokenizer of a GGUF file (its header only).
 * @example
 * ```ts
 * const { tokenizer } = await loadGgufTokenizer("rwkv7-g1-0.4b-Q8_0.gguf");
 * tokenizer.encode("Hello"); // [33155]
 * ```
 */
export async function loadGgufTokenizer(path: string): Promise<GgufTokenizer> {
  const g = await readGguf(path);
  try {
    return tokenizerFromGguf(g.metadata, path);
  } finally {
    g.close();
  }
}

/** Whether `path` is a GGUF file (by its first four bytes). */
export async function isGgufFile(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch {
    return false;
  }
  try {
    const b = new Uint8Array(4);
    let n = 0;
    while (n < 4) {
      const r = await f.read(b.subarray(n));
      if (r === null) break;
      n += r;
    }
    return n === 4 && new DataView(b.buffer).getUint32(0, true) === 0x46554747;
  } finally {
    f.close();
  }
}
