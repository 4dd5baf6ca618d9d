/**
 * GGUF files written and quantized by llama.cpp's own tools (`../shared/fixtures/gguf/`): every
 * file loads, and its logits match the official implementation run on exactly the weights it
 * stores, at every step of B; the official view of a file equals the checkpoint it was made
 * from; ggml's block types decode as ggml's C loops decode them.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture, FIXTURES_DIR, listFixtures } from "../testing/fixtures.ts";
import { rng } from "../testing/random.ts";
import { loadModel } from "../lib/load.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { metadataObject, readGguf } from "../lib/formats/gguf.ts";
import { halfToFloat, toFloat32 } from "../lib/formats/dtype.ts";
import { dequantizeGgmlType, GGML } from "../lib/formats/ggml_quants.ts";
import type { Model } from "../lib/model/model.ts";
import { loadWeights } from "../lib/model/weights.ts";
import { detectSpec } from "../lib/spec/spec.ts";
import { KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";
import { webgpuTest } from "./_webgpu.ts";

const FILES = listFixtures(/\.gguf$/, "gguf", "the GGUF fixtures");
const dir = `${FIXTURES_DIR}/gguf`;

interface Reference {
  tokens_B: number[];
}

/** Max abs difference from the reference logits over every step of B, and argmax agreement. */
async function runB(model: Model, base: string): Promise<{ worst: number; agree: number }> {
  const ref: Reference = JSON.parse(await Deno.readTextFile(`${dir}/${base}.official-deq.json`));
  const all = new Float32Array(
    (await Deno.readFile(`${dir}/${base}.official-deq.logits-B.f32`)).buffer,
  );
  const V = model.info.vocab;
  assertEquals(all.length, ref.tokens_B.length * V, "reference logits cover every step of B");
  const s = model.createState();
  let worst = 0, agree = 0;
  for (let i = 0; i < ref.tokens_B.length; i++) {
    const l = await model.forward([ref.tokens_B[i]], s);
    let am = 0, ra = 0;
    for (let j = 0; j < V; j++) {
      worst = Math.max(worst, Math.abs(l[j] - all[i * V + j]));
      if (l[j] > l[am]) am = j;
      if (all[i * V + j] > all[i * V + ra]) ra = j;
    }
    if (am === ra) agree++;
  }
  return { worst, agree: agree / ref.tokens_B.length };
}

/** llama.cpp's own distance from the float32 reference, from the file's llamacpp JSON. */
async function llamaDistance(base: string): Promise<number> {
  const j = JSON.parse(await Deno.readTextFile(`${dir}/${base}.llamacpp.json`));
  return j.max_abs_diff_vs_official_on_dequantized_gguf;
}

Deno.test({
  name: "gguf: Q8_0 matrices arranged from their blocks in place equal their integers and scales " +
    "arranged (the wasm layout, every byte of the weights)",
  ignore: !FILES.some((f) => f.includes("Q8_0")),
  fn: async () => {
    for (const f of FILES.filter((f) => f.includes("Q8_0"))) {
      const memories: Uint8Array[][] = [];
      for (const blocks of [true, false]) {
        const ck = await openCheckpoint(`${dir}/${f}`);
        assert(ck.readBlocks && [...ck.blockQuantized!.values()].some((q) => q.q8_0), f);
        // without readBlocks the loader reads integers and scales (the splitter's path)
        const view = blocks ? ck : { ...ck, readBlocks: undefined };
        const { arena } = await loadWeights(view, detectSpec(ck.tensors, ck.path), {
          layout: KERNEL_LAYOUT,
        });
        ck.close();
        memories.push(arena.memories.map((m) => new Uint8Array(m.buffer)));
      }
      assertEquals(memories[0].length, memories[1].length, f);
      memories[0].forEach((m, k) => assert(equalBytes(m, memories[1][k]), `${f} memory ${k}`));
    }
  },
});

Deno.test("gguf: a long list of strings (a vocabulary) reads back exactly, decoded on first use", async () => {
  // ASCII, two-, three- and four-byte UTF-8 (a surrogate pair in JS), empty, and bytes that a
  // windows-1252 decoding would change (0x80-0x9f) inside UTF-8 sequences
  const samples = ["a", "héllo", "日本語", "😀x", "", "\\x00", " the", "€‚ƒ", "\u0085", "~"];
  const tokens = Array.from({ length: 3000 }, (_, i) => samples[i % samples.length] + i);
  const enc = new TextEncoder(), parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24);
  const u64 = (v: number) => (u32(v), u32(0));
  const str = (t: string) => {
    const b = enc.encode(t);
    u64(b.length);
    parts.push(...b);
  };
  parts.push(0x47, 0x47, 0x55, 0x46);
  u32(3);
  u64(0);
  u64(2);
  str("tokenizer.ggml.tokens");
  u32(9);
  u32(8);
  u64(tokens.length);
  tokens.forEach(str);
  str("after");
  u32(4);
  u32(7);
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, Uint8Array.from(parts));
    const g = await readGguf(path);
    try {
      const list = g.metadata.get("tokenizer.ggml.tokens") as string[];
      assert(Array.isArray(list), "an array");
      assertEquals(list.length, tokens.length);
      assertEquals(g.metadata.get("after"), 7, "the value after the list");
      assert(Deno.inspect(list).includes("héllo1"), "inspected as its strings");
      assertEquals([...list], tokens);
      assertEquals(
        JSON.stringify(metadataObject(g)["tokenizer.ggml.tokens"]),
        JSON.stringify(tokens),
      );
    } finally {
      g.close();
    }
  } finally {
    await Deno.remove(path);
  }
});

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

for (const f of FILES) {
  const base = f.replace(/\.gguf$/, "");
  for (const backend of ["reference", "wasm"] as const) {
    Deno.test(`gguf: ${f} in float32 on ${backend} matches the official logits at every step of B`, async () => {
      const model = await loadModel(`${dir}/${f}`, { backend, dtype: "f32", threads: 2 });
      try {
        const { worst, agree } = await runB(model, base);
        console.log(
          `  ${f} ${backend} f32: max abs diff ${worst.toExponential(3)}, argmax ${agree * 100} %`,
        );
        assert(worst <= 1e-4, `max abs diff ${worst} over 1e-4`);
        assertEquals(agree, 1, "argmax at every step");
      } finally {
        await model.dispose();
      }
    });
    Deno.test(`gguf: ${f} on its fast path (${backend}, dtype auto) stays within llama.cpp's distance`, async () => {
      const model = await loadModel(`${dir}/${f}`, { backend, threads: 2 });
      try {
        const { worst, agree } = await runB(model, base);
        const llama = await llamaDistance(base);
        console.log(
          `  ${f} ${backend} ${model.info.dtype}: max abs diff ${worst.toExponential(3)} ` +
            `(llama.cpp ${llama.toExponential(3)}), argmax ${(agree * 100).toFixed(1)} %`,
        );
        const bound = Math.max(llama, 1e-4);
        assert(worst <= bound, `max abs diff ${worst} over ${bound}`);
        assert(agree >= 0.95, `argmax agreement ${agree}`);
      } finally {
        await model.dispose();
      }
    });
  }
}

/** Every tensor of the official view against the checkpoint the file was converted from. */
async function assertSameTensors(gguf: string, pth: string, exactQuantized: boolean) {
  const a = await openCheckpoint(gguf), b = await openCheckpoint(pth);
  try {
    assertEquals(
      [...a.tensors.keys()].filter((n) => !n.endsWith(".qscale")).sort(),
      [...b.tensors.keys()].sort(),
    );
    for (const [n, t] of a.tensors) {
      if (n.endsWith(".qscale")) continue;
      const u = b.tensors.get(n)!;
      const q = a.blockQuantized?.get(n);
      if (q) {
        assertEquals([q.rows, q.cols], u.shape, `${n} shape`);
        if (exactQuantized) continue;
      }
      assertEquals(t.shape, u.shape, `${n} shape`);
      const x = toFloat32(await a.read(n), t.dtype), y = toFloat32(await b.read(n), u.dtype);
      for (let i = 0; i < x.length; i++) {
        if (x[i] !== y[i]) throw new Error(`${n}[${i}]: ${x[i]} in the GGUF, ${y[i]} in the .pth`);
      }
    }
  } finally {
    a.close();
    b.close();
  }
}

// The F32 file holds the source weights exactly; the Q8_0 file its float tensors exactly.
for (
  const [gguf, pth, floatsOnly] of [
    ["tiny-rwkv-7v0-F32.gguf", "tiny-rwkv-7v0-bf16.pth", false],
    ["tiny-rwkv-6v0-Q8_0.gguf", "tiny-rwkv-6v0-bf16.pth", true],
  ] as const
) {
  Deno.test({
    name: `gguf: ${gguf} read back is ${pth} (every name and shape; ${
      floatsOnly ? "the float tensors'" : "every"
    } value)`,
    ignore: !fixture(`gguf/${gguf}`) || !fixture(pth),
    fn: () => assertSameTensors(`${dir}/${gguf}`, `${FIXTURES_DIR}/${pth}`, floatsOnly),
  });
}

// ---- ggml's decoders, written as its C loops are (ggml-quants.c), on random blocks ----

/** Random block bytes with every half at `halves` a finite, moderate value. */
function randomBlocks(n: number, size: number, halves: number[], seed: number): Uint8Array {
  const r = rng(seed), b = new Uint8Array(n * size);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  for (let k = 0; k < n; k++) {
    for (const h of halves) {
      // sign, exponent 1..29 (no inf/NaN), any mantissa
      const v = (r() < 0.5 ? 0x8000 : 0) | ((1 + Math.floor(r() * 29)) << 10) |
        Math.floor(r() * 1024);
      b[k * size + h] = v & 255;
      b[k * size + h + 1] = v >> 8;
    }
  }
  return b;
}

const hf = (b: Uint8Array, o: number) => halfToFloat(b[o] | (b[o + 1] << 8));
const F = Math.fround;

function cQ4_1(x: Uint8Array, nb: number): Float32Array {
  const y = new Float32Array(nb * 32);
  for (let i = 0; i < nb; i++) {
    const o = i * 20, d = hf(x, o), m = hf(x, o + 2);
    for (let j = 0; j < 16; j++) {
      y[i * 32 + j] = F(F((x[o + 4 + j] & 0x0f) * d) + m);
      y[i * 32 + j + 16] = F(F((x[o + 4 + j] >> 4) * d) + m);
    }
  }
  return y;
}

function cQ5_1(x: Uint8Array, nb: number): Float32Array {
  const y = new Float32Array(nb * 32);
  for (let i = 0; i < nb; i++) {
    const o = i * 24, d = hf(x, o), m = hf(x, o + 2);
    const qh = new DataView(x.buffer, x.byteOffset + o + 4, 4).getUint32(0, true);
    for (let j = 0; j < 16; j++) {
      const xh0 = ((qh >>> j) << 4) & 0x10, xh1 = (qh >>> (j + 12)) & 0x10;
      y[i * 32 + j] = F(F(((x[o + 8 + j] & 0x0f) | xh0) * d) + m);
      y[i * 32 + j + 16] = F(F(((x[o + 8 + j] >> 4) | xh1) * d) + m);
    }
  }
  return y;
}

function scaleMin(j: number, q: Uint8Array, o: number): [number, number] {
  return j < 4 ? [q[o + j] & 63, q[o + j + 4] & 63] : [
    (q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4),
    (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4),
  ];
}

function cQ5_K(x: Uint8Array, nb: number): Float32Array {
  const y = new Float32Array(nb * 256);
  let yi = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 176, d = hf(x, o), min = hf(x, o + 2);
    let ql = o + 48, is = 0, u1 = 1, u2 = 2;
    for (let j = 0; j < 256; j += 64) {
      let [sc, m] = scaleMin(is, x, o + 4);
      const d1 = F(d * sc), m1 = F(min * m);
      [sc, m] = scaleMin(is + 1, x, o + 4);
      const d2 = F(d * sc), m2 = F(min * m);
      for (let l = 0; l < 32; l++) {
        y[yi++] = F(F(d1 * ((x[ql + l] & 0xf) + (x[o + 16 + l] & u1 ? 16 : 0))) - m1);
      }
      for (let l = 0; l < 32; l++) {
        y[yi++] = F(F(d2 * ((x[ql + l] >> 4) + (x[o + 16 + l] & u2 ? 16 : 0))) - m2);
      }
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
  return y;
}

function cQ6_K(x: Uint8Array, nb: number): Float32Array {
  const y = new Float32Array(nb * 256);
  for (let i = 0; i < nb; i++) {
    const o = i * 210, d = hf(x, o + 208);
    let ql = o, qh = o + 128, sc = o + 192, yo = i * 256;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const s = (k: number) => (x[sc + is + k] << 24) >> 24;
        const q1 = ((x[ql + l] & 0xf) | (((x[qh + l] >> 0) & 3) << 4)) - 32;
        const q2 = ((x[ql + l + 32] & 0xf) | (((x[qh + l] >> 2) & 3) << 4)) - 32;
        const q3 = ((x[ql + l] >> 4) | (((x[qh + l] >> 4) & 3) << 4)) - 32;
        const q4 = ((x[ql + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4)) - 32;
        y[yo + l] = F(F(d * s(0)) * q1);
        y[yo + l + 32] = F(F(d * s(2)) * q2);
        y[yo + l + 64] = F(F(d * s(4)) * q3);
        y[yo + l + 96] = F(F(d * s(6)) * q4);
      }
      yo += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
  return y;
}

function cQ4_K(x: Uint8Array, nb: number): Float32Array {
  const y = new Float32Array(nb * 256);
  let yi = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 144, d = hf(x, o), min = hf(x, o + 2);
    let q = o + 16, is = 0;
    for (let j = 0; j < 256; j += 64) {
      let [sc, m] = scaleMin(is, x, o + 4);
      const d1 = F(d * sc), m1 = F(min * m);
      [sc, m] = scaleMin(is + 1, x, o + 4);
      const d2 = F(d * sc), m2 = F(min * m);
      for (let l = 0; l < 32; l++) y[yi++] = F(F(d1 * (x[q + l] & 0xf)) - m1);
      for (let l = 0; l < 32; l++) y[yi++] = F(F(d2 * (x[q + l] >> 4)) - m2);
      q += 32;
      is += 2;
    }
  }
  return y;
}

Deno.test("gguf: Q4_1, Q5_1, Q4_K, Q5_K, Q6_K and BF16 decode exactly as ggml's C loops do", () => {
  const nb = 64;
  const cases: [
    string,
    number,
    number,
    number[],
    (x: Uint8Array, nb: number) => Float32Array,
    number,
  ][] = [
    ["Q4_1", GGML.Q4_1, 20, [0, 2], cQ4_1, 32],
    ["Q5_1", GGML.Q5_1, 24, [0, 2], cQ5_1, 32],
    ["Q4_K", GGML.Q4_K, 144, [0, 2], cQ4_K, 256],
    ["Q5_K", GGML.Q5_K, 176, [0, 2], cQ5_K, 256],
    ["Q6_K", GGML.Q6_K, 210, [208], cQ6_K, 256],
  ];
  for (const [name, type, size, halves, ref, per] of cases) {
    const raw = randomBlocks(nb, size, halves, type * 7 + 1);
    const got = dequantizeGgmlType(raw, type, nb * per);
    const want = ref(raw, nb);
    for (let i = 0; i < want.length; i++) {
      if (!Object.is(got[i], want[i])) throw new Error(`${name}[${i}]: ${got[i]}, ggml ${want[i]}`);
    }
  }
  // BF16: the top half of the f32 bits.
  const raw = randomBlocks(256, 2, [0], 5);
  const got = dequantizeGgmlType(raw, GGML.BF16, 256);
  const bits = new Uint32Array(got.buffer);
  for (let i = 0; i < 256; i++) {
    assertEquals(bits[i], ((raw[2 * i] | (raw[2 * i + 1] << 8)) << 16) >>> 0);
  }
});

Deno.test({
  name: "gguf: the tokenizer a file carries is the World vocabulary's (rwkv) or the bytes",
  ignore: !fixture("gguf/rwkv7-2x256-Q8_0.gguf") ||
    !fixture("tokenizers/rwkv_vocab_v20230424.txt") || !fixture("gguf/tiny-rwkv-6v0-Q8_0.gguf"),
  fn: async () => {
    const { loadGgufTokenizer, unescapeRwkvToken } = await import("../lib/tokenizer/gguf.ts");
    const { loadTokenizer } = await import("../lib/tokenizer/mod.ts");
    const g = await loadGgufTokenizer(`${dir}/rwkv7-2x256-Q8_0.gguf`);
    assertEquals([g.tokenizer.kind, g.tokenizer.vocabSize], ["world", 512]);
    assertEquals([g.chatTemplate, g.eotToken, g.eosToken], ["rwkv-world", 261, 0]);
    assertEquals(g.tokenizer.decode([261]), "\n\n");
    const world = await loadTokenizer(`${FIXTURES_DIR}/tokenizers/rwkv_vocab_v20230424.txt`);
    for (let id = 1; id < 512; id++) {
      assertEquals(g.tokenizer.decodeBytes([id]), world.decodeBytes([id]), `token ${id}`);
    }
    assertEquals(g.tokenizer.decodeBytes([0]).length, 0, "<s> (control) decodes to nothing");
    // llama.cpp's tokenizer gives tokens_B for text_B with this vocabulary: so does ours
    const llama = JSON.parse(await Deno.readTextFile(`${dir}/rwkv7-2x256-Q8_0.llamacpp.json`));
    assertEquals(g.tokenizer.encode(llama.text_B), llama.tokens_B);
    const tiny = await loadGgufTokenizer(`${dir}/tiny-rwkv-6v0-Q8_0.gguf`);
    assertEquals(tiny.tokenizer.kind, "bytes");
    // repr() escapes
    assertEquals([...unescapeRwkvToken("\\'a\\\\\\t\\n\\r\\x00\\xff\"")], [
      39,
      97,
      92,
      9,
      10,
      13,
      0,
      255,
      34,
    ]);
  },
});

for (const f of FILES) {
  const base = f.replace(/\.gguf$/, "");
  webgpuTest(import.meta.url, {
    name:
      `gguf: ${f} on WebGPU: float32 within 1e-4 of the official logits, dtype auto within llama.cpp's distance`,
    fn: async () => {
      for (const dtype of ["f32", "auto"] as const) {
        const model = await loadModel(`${dir}/${f}`, { device: "webgpu", dtype });
        try {
          const { worst, agree } = await runB(model, base);
          const bound = dtype === "f32" ? 1e-4 : Math.max(await llamaDistance(base), 1e-4);
          console.log(
            `  ${f} webgpu ${model.info.dtype}: ${worst.toExponential(3)}, argmax ${agree * 100} %`,
          );
          assert(worst <= bound, `${dtype}: max abs diff ${worst} over ${bound}`);
        } finally {
          await model.dispose();
        }
      }
    },
  });
}

Deno.test("gguf: a file's chat template is recognised as llama.cpp's template detection does", async () => {
  const { namedTemplate, WORLD_TEMPLATE } = await import("../lib/server/template.ts");
  // the name the fixtures carry, and a Jinja text with the RWKV World user turn llama.cpp looks
  // for (src/llama-chat.cpp); other templates are not guessed at
  assertEquals(namedTemplate("rwkv-world"), WORLD_TEMPLATE);
  const rwkvJinja = "{%- for message in messages -%}{%- if message['role'] == 'user' -%}" +
    "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}{%- endif -%}{%- endfor -%}";
  assertEquals(namedTemplate(rwkvJinja), WORLD_TEMPLATE);
  const chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + " +
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  assertEquals(namedTemplate(chatml), undefined);
  assertEquals(namedTemplate(undefined), undefined);
});
