/**
 * Tokenizers: RWKV World (`rwkv_vocab_v20230424.txt`, greedy trie), Hugging Face
 * `tokenizer.json` (GPT-NeoX 20B of the RWKV-4 Pile models), and byte-level (vocab 256).
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./mod.ts";
 * const tok = await loadTokenizer("bytes");
 * const ids = tok.encode("héllo"); // [104, 195, 169, 108, 108, 111]
 * const stream = tok.createDecoder();
 * let text = "";
 * for (const id of ids) text += stream.push(id); // never half a character
 * text += stream.flush();
 * console.log(text === tok.decode(ids)); // true
 * ```
 * @module
 */

import { TokenizerError } from "../errors.ts";
import { ByteTokenizer } from "./bytes.ts";
import { HfTokenizer } from "./hf.ts";
import { isGgufFile, loadGgufTokenizer } from "./gguf.ts";
import type { Tokenizer } from "./types.ts";
import { WorldTokenizer } from "./world.ts";

export { ByteTokenizer, HfTokenizer, WorldTokenizer };
export type { Tokenizer } from "./types.ts";

/**
 * Loads a tokenizer: a `tokenizer.json` path (Hugging Face), a World vocabulary file
 * (`rwkv_vocab_v20230424.txt` format), a GGUF model file (the tokenizer it carries), or `"bytes"`
 * for the byte-level one.
 * @example
 * ```ts
 * const tok = await loadTokenizer("rwkv_vocab_v20230424.txt");
 * tok.encode("Hello world!"); // [33155, 40213, 34]
 * ```
 */
export async function loadTokenizer(pathOrKind: string): Promise<Tokenizer> {
  if (pathOrKind === "bytes") return new ByteTokenizer();
  if (await isGgufFile(pathOrKind)) return (await loadGgufTokenizer(pathOrKind)).tokenizer;
  let text: string;
  try {
    text = await Deno.readTextFile(pathOrKind);
  } catch (e) {
    throw new TokenizerError(`${pathOrKind}: cannot read tokenizer (${(e as Error).message})`, {
      cause: e,
    });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM some editors add
  // JSON by extension or by its first character; anything else must be a World vocabulary.
  if (pathOrKind.toLowerCase().endsWith(".json") || text.trimStart().startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TokenizerError(`${pathOrKind}: malformed JSON (${(e as Error).message})`, {
        cause: e,
      });
    }
    if (typeof json !== "object" || json === null || !("model" in json)) {
      throw new TokenizerError(`${pathOrKind}: not a Hugging Face tokenizer.json (no "model")`);
    }
    return new HfTokenizer(json as Record<string, unknown>, pathOrKind);
  }
  return WorldTokenizer.parse(text, pathOrKind);
}

/** Known tokenizer files by the vocabulary size of the models that use them. */
const KNOWN: Record<number, string[]> = {
  65536: ["rwkv_vocab_v20230424.txt"],
  50277: ["20B_tokenizer.json", "tokenizer.json"],
};

/**
 * Finds the tokenizer for a model by its vocabulary size: "bytes" for 256, else a known file
 * beside the model (or in a `tokenizers/` folder beside it). Undefined when none is found.
 * @example
 * ```ts
 * await findTokenizerFor("models/RWKV-x070-World-0.1B.pth", 65536); // ".../rwkv_vocab_v20230424.txt"
 * ```
 */
export async function findTokenizerFor(
  modelPath: string,
  vocabSize: number,
): Promise<string | undefined> {
  if (vocabSize === 256) return "bytes";
  const dir = modelPath.includes("/") ? modelPath.slice(0, modelPath.lastIndexOf("/")) : ".";
  for (const name of KNOWN[vocabSize] ?? []) {
    for (const p of [`${dir}/${name}`, `${dir}/tokenizers/${name}`]) {
      try {
        if ((await Deno.stat(p)).isFile) return p;
      } catch { /* not there */ }
    }
  }
  return undefined;
}
