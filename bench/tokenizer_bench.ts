/**
 * `deno bench` of the World tokenizer on ~1 MB of mixed text (English prose, code, Chinese,
 * Japanese, emoji, rare characters that fall back to byte tokens), built deterministically.
 * The throughput in MB/s is measured once before the benches and shown in their names.
 *
 *   deno bench -A bench/tokenizer_bench.ts
 *
 * Needs `tokenizers/rwkv_vocab_v20230424.txt` from the shared fixtures (`$RWKV_FIXTURES`).
 * @module
 */

import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { fixture } from "../testing/fixtures.ts";

/** ~`bytes` of mixed text; the same every run (a small LCG picks the pieces). */
function mixedText(bytes: number): string {
  const pieces = [
    "The quick brown fox jumps over the lazy dog, and the dog did not mind at all. ",
    "In a shocking finding, scientists discovered a herd of dragons living in a remote valley.\n",
    "function matvec(w, x, out) {\n\tfor (let r = 0; r < out.length; r++) out[r] = dot(w[r], x);\n}\n",
    "def forward(self, tokens, state):\n    return self.head(self.blocks(tokens, state))\n",
    "你好，请介绍一下你自己。今天的天气很好，我们去公园散步吧。",
    "日本語のテキストも正しく扱えるか？カタカナ、ひらがな。",
    "emoji 🐉🔥👍🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 ",
    "rare 𓀀𓀁 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀋𠀌 ",
    "Ünïcödé àccents — “quotes” … ellipsis ",
  ];
  const enc = new TextEncoder();
  const sizes = pieces.map((p) => enc.encode(p).length);
  let out = "", n = 0, seed = 12345;
  while (n < bytes) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const k = (seed >>> 16) % pieces.length;
    out += pieces[k];
    n += sizes[k];
  }
  return out;
}

const vocab = fixture("tokenizers/rwkv_vocab_v20230424.txt");
if (vocab) {
  const tok = await loadTokenizer(vocab);
  const text = mixedText(1 << 20);
  const bytes = new TextEncoder().encode(text);
  const mb = bytes.length / 1e6;

  // Measure throughput directly (deno bench prints time per run, not MB/s).
  for (let i = 0; i < 5; i++) tok.encode(text); // warm up the JIT
  const runs = 20, t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < runs; i++) tokens = tok.encode(text).length;
  const seconds = (performance.now() - t0) / 1000 / runs;
  const encodeRate = (mb / seconds).toFixed(1);
  const ids = tok.encode(text);
  const t1 = performance.now();
  for (let i = 0; i < runs; i++) tok.decode(ids);
  const decodeRate = (mb / ((performance.now() - t1) / 1000 / runs)).toFixed(1);
  console.log(
    `World tokenizer: ${mb.toFixed(2)} MB → ${tokens} tokens; ` +
      `encode ${encodeRate} MB/s, decode ${decodeRate} MB/s`,
  );

  Deno.bench({
    name: `World encode ${mb.toFixed(2)} MB mixed text (${encodeRate} MB/s)`,
    group: "world",
    baseline: true,
    fn: () => {
      tok.encode(text);
    },
  });
  Deno.bench({
    name: `World decode ${ids.length} tokens (${decodeRate} MB/s)`,
    group: "world",
    fn: () => {
      tok.decode(ids);
    },
  });
  Deno.bench({
    name: "World streaming decode, token by token",
    group: "world",
    fn: () => {
      const d = tok.createDecoder();
      for (const id of ids) d.push(id);
      d.flush();
    },
  });
}
