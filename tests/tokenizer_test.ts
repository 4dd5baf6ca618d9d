/**
 * Tokenizers against the reference encodings in `../shared/fixtures/tokenizers`.
 */
import {
  findTokenizerFor,
  loadTokenizer,
  type Tokenizer,
  WorldTokenizer,
} from "../lib/tokenizer/mod.ts";
import { TokenizerError, UsageError } from "../lib/errors.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";

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

/** Mixed text: English, code, CJK, emoji, rare characters, control bytes. */
function mixedText(n: number): string {
  const parts = [
    "The quick brown fox jumps over the lazy dog. ",
    "for (let i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
    "你好，世界！这是一个测试。",
    "🐉🔥👍🏽👨‍👩‍👧 ",
    "日本語のテキスト、カタカナ。",
    "𓀀𝔘𝔫𝔦𠀋 ",
    "  \r\n\x00\x7f é ü ß — “quotes” … ",
  ];
  let s = "";
  for (let i = 0; s.length < n; i++) s += parts[(i * 5 + (i >> 2)) % parts.length] + i;
  return s;
}

Deno.test({
  name: "tokenizer world: trie encoding equals a brute-force longest match on mixed text",
  ignore: !world,
  fn: async () => {
    const tok = await loadTokenizer(world!);
    // The reference: the longest token at each position, found by trying every length.
    const byBytes = new Map<string, number>();
    let longest = 0;
    for (let id = 1; id < tok.vocabSize; id++) {
      const b = tok.decodeBytes([id]);
      byBytes.set(String.fromCharCode(...b), id);
      longest = Math.max(longest, b.length);
    }
    const bytes = new TextEncoder().encode(mixedText(6000));
    const expected: number[] = [];
    for (let i = 0; i < bytes.length;) {
      for (let len = Math.min(longest, bytes.length - i); len > 0; len--) {
        const id = byBytes.get(String.fromCharCode(...bytes.subarray(i, i + len)));
        if (id !== undefined) {
          expected.push(id);
          i += len;
          break;
        }
      }
    }
    const ids = tok.encode(new TextDecoder().decode(bytes));
    assertEquals(ids, expected);
    assertEquals(tok.decodeBytes(ids), bytes);
  },
});

Deno.test({
  name: "tokenizer world: vocab size, end-of-text id 0, ids outside the vocabulary",
  ignore: !world,
  fn: async () => {
    const tok = await loadTokenizer(world!);
    assertEquals(tok.kind, "world");
    assertEquals(tok.vocabSize, 65530); // the file's last id is 65529; models pad to 65536
    assertEquals(tok.decode([0]), "");
    assertEquals(tok.decode([]), "");
    assertThrows(() => tok.decode([65530]), UsageError, "65530");
    assertThrows(() => tok.decode([-1]), UsageError);
    // a lone continuation byte decodes to U+FFFD, as TextDecoder does
    assertEquals(tok.decode([129]), "\uFFFD");
  },
});

Deno.test("tokenizer world: python literals (escapes, bytes, quotes) parse to the right bytes", () => {
  const vocab = [
    String.raw`1 'a' 1`,
    String.raw`2 '\n' 1`,
    String.raw`3 b'\xe4\xb8' 2`,
    String.raw`4 '\xe9' 2`, // a str escape is a code point: U+00E9, two UTF-8 bytes
    String.raw`5 '\u4e16' 3`,
    String.raw`6 "'" 1`,
    String.raw`7 '\'\\\t' 3`,
    String.raw`8 'a b' 3`,
    String.raw`9 '🐉' 4`,
    String.raw`10 b'\x96' 1`,
    String.raw`11 '\U0001f409' 4`,
  ].join("\r\n");
  const tok = WorldTokenizer.parse(vocab, "tiny.txt");
  const bytes = (id: number) => [...tok.decodeBytes([id])];
  assertEquals(bytes(2), [10]);
  assertEquals(bytes(3), [0xe4, 0xb8]);
  assertEquals(bytes(4), [0xc3, 0xa9]);
  assertEquals(bytes(5), [0xe4, 0xb8, 0x96]);
  assertEquals(bytes(7), [39, 92, 9]);
  assertEquals(tok.decode([3, 10]), "世");
  assertEquals(tok.decode([11]), "🐉");
  // greedy longest match prefers "a b" over "a"
  assertEquals(tok.encode("a ba"), [8, 1]);
  assertEquals(tok.encode("世"), [5]);
  // a streamed character split across tokens 3 and 10 comes out whole
  const d = tok.createDecoder();
  assertEquals([d.push(1), d.push(3), d.push(10), d.flush()], ["a", "", "世", ""]);
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
    // byte-level: token bytes are exact even for tokens that hold part of a character
    const mixed = mixedText(3000);
    const ids = tok.encode(mixed);
    const perToken = ids.map((id) => tok.decodeBytes([id]));
    const joined = new Uint8Array(perToken.reduce((n, b) => n + b.length, 0));
    perToken.reduce((o, b) => (joined.set(b, o), o + b.length), 0);
    assertEquals(joined, new TextEncoder().encode(mixed));
    assertEquals(streamed(tok, ids), mixed);
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
    const bad: [string, string][] = [
      ["1 'a' 1\n2 '\\q' 2\n", "x.txt:2: unknown escape"],
      ["1 'a' 1\n\n3 'b' 1\n1 'c' 1\n", "x.txt:4: token id 1 repeated"],
      ["1 'a'\n", "x.txt:1: expected"],
      ["x 'a' 1\n", "x.txt:1: bad token id"],
      ["1 b'\\x4' 1\n", "x.txt:1: bad escape"],
      ["1 b'é' 1\n", "x.txt:1: non-ASCII character"],
    ];
    for (const [text, msg] of bad) {
      await Deno.writeTextFile(`${dir}/x.txt`, text);
      await assertRejects(() => loadTokenizer(`${dir}/x.txt`), TokenizerError, msg);
    }
    await Deno.writeTextFile(`${dir}/u.json`, `{"version": "1.0"}`);
    await assertRejects(() => loadTokenizer(`${dir}/u.json`), TokenizerError, "u.json: not a");
  } finally {
    await cleanup();
  }
});

Deno.test("tokenizer: findTokenizerFor looks beside the model by vocab size", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const model = `${dir}/model.pth`;
    assertEquals(await findTokenizerFor(model, 256), "bytes");
    assertEquals(await findTokenizerFor(model, 65536), undefined);
    await Deno.writeTextFile(`${dir}/rwkv_vocab_v20230424.txt`, "1 'a' 1\n");
    await Deno.writeTextFile(`${dir}/20B_tokenizer.json`, "{}");
    assertEquals(await findTokenizerFor(model, 65536), `${dir}/rwkv_vocab_v20230424.txt`);
    assertEquals(await findTokenizerFor(model, 50277), `${dir}/20B_tokenizer.json`);
    assertEquals(await findTokenizerFor(model, 12345), undefined);
  } finally {
    await cleanup();
  }
});
