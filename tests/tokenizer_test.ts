/**
 * Tokenizers against the reference encodings in `../shared/fixtures/tokenizers`.
 */
import { loadTokenizer, type Tokenizer } from "../lib/tokenizer/mod.ts";
import { TokenizerError } from "../lib/errors.ts";
import { fixture, tempDir } from "./_fixtures.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";

interface Cases {
  cases: { text: string; ids: number[] }[];
}

const world = fixture("tokenizers/rwkv_vocab_v20230424.txt");
const worldRef = fixture("tokenizers/ref-world.json");
const neox = fixture("tokenizers/20B_tokenizer.json");
const neoxRef = fixture("tokenizers/ref-20b.json");

/** Streams ids one at a time and checks no replacement char appears mid-stream. */
function streamed(tok: Tokenizer, ids: number[]): string {
  const d = tok.createDecoder();
  let out = "";
  for (const id of ids) {
    const piece = d.push(id);
    assert(!piece.includes("\uFFFD"), `half a character emitted: ${JSON.stringify(piece)}`);
    out += piece;
  }
  return out + d.flush();
}

for (
  const [name, vocab, ref] of [["world", world, worldRef], ["20B", neox, neoxRef]] as const
) {
  Deno.test({
    name: `tokenizer ${name}: every reference case encodes to the same ids and decodes back`,
    ignore: !vocab || !ref,
    fn: async () => {
      const tok = await loadTokenizer(vocab!);
      const { cases } = JSON.parse(await Deno.readTextFile(ref!)) as Cases;
      assert(cases.length >= 10);
      for (const c of cases) {
        assertEquals(tok.encode(c.text), c.ids, JSON.stringify(c.text));
        assertEquals(tok.decode(c.ids), c.text);
        assertEquals(streamed(tok, c.ids), c.text, `streamed ${JSON.stringify(c.text)}`);
      }
      assertEquals(tok.decode([]), "");
    },
  });
}

Deno.test({
  name: "tokenizer world: characters split across tokens stream exactly",
  ignore: !world,
  fn: async () => {
    const tok = await loadTokenizer(world!);
    // Rare characters are not in the vocabulary whole: they are spelled with byte tokens.
    const text = "𓀀 𝔘𝔫𝔦 🐉 𠀋";
    const ids = tok.encode(text);
    const perChar = [...text].length;
    assert(ids.length > perChar, "some characters take several tokens");
    const bytesPerToken = ids.map((id) => tok.decodeBytes([id]).length);
    assert(bytesPerToken.some((n) => n === 1), "byte tokens are used");
    assertEquals(streamed(tok, ids), text);
    assertEquals(tok.decode(ids), text);
  },
});

Deno.test("tokenizer bytes: vocab 256, multi-byte characters stream exactly", async () => {
  const tok = await loadTokenizer("bytes");
  assertEquals(tok.vocabSize, 256);
  const text = "héllo 世界 🐉";
  const ids = tok.encode(text);
  assertEquals(ids.length, new TextEncoder().encode(text).length);
  assertEquals(streamed(tok, ids), text);
  assertEquals(tok.decode([]), "");
});

Deno.test({
  name: "tokenizer 20B: decode([]) is empty and byte pieces stream exactly",
  ignore: !neox,
  fn: async () => {
    const tok = await loadTokenizer(neox!);
    assertEquals(tok.vocabSize, 50277);
    assertEquals(tok.decode([]), "");
    const text = "dragons 🐉🔥 and 𠀋 speak 中文";
    assertEquals(streamed(tok, tok.encode(text)), text);
  },
});

Deno.test("tokenizer: bad files give TokenizerError naming the file and line", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await Deno.writeTextFile(`${dir}/v.txt`, "1 'a' 1\n2 'bc 2\n");
    await assertRejects(() => loadTokenizer(`${dir}/v.txt`), TokenizerError, `${dir}/v.txt:2`);
    await Deno.writeTextFile(`${dir}/w.txt`, "1 'ab' 3\n");
    await assertRejects(() => loadTokenizer(`${dir}/w.txt`), TokenizerError, "line says 3");
    await Deno.writeTextFile(`${dir}/t.json`, "{ not json");
    await assertRejects(() => loadTokenizer(`${dir}/t.json`), TokenizerError, "t.json");
    await assertRejects(() => loadTokenizer(`${dir}/missing.txt`), TokenizerError, "missing.txt");
  } finally {
    await cleanup();
  }
});
