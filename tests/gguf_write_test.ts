/**
 * The GGUF writer (`convert/gguf.ts`, `cli/convert.ts --type`): from the fixture checkpoints it
 * writes the very bytes llama.cpp's own converter and `llama-quantize` wrote for the fixture GGUF
 * files; every file passes the rules llama.cpp's loader applies (`_gguf_llamacpp.ts`, itself
 * checked on llama.cpp's files); read back, the tensors are the source's as each type defines
 * them, and the logits the official ones.
 */
import { assert, assertEquals } from "./_assert.ts";
import { makeModel } from "./_with.ts";
import { fixture, FIXTURES_DIR, listFixtures, tempDir } from "../testing/fixtures.ts";
import { llamaCppProblems } from "./_gguf_llamacpp.ts";
import { readGguf } from "../lib/formats/gguf.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { floatToHalf, halfToFloat, toFloat32 } from "../lib/formats/dtype.ts";
import { type GgufType, writeGgufModel } from "../convert/gguf.ts";
import { loadModel } from "../lib/load.ts";

const gdir = `${FIXTURES_DIR}/gguf`;
const R7 = fixture("gguf/rand-rwkv7-2x256-v512-bf16.pth");
const T6 = fixture("tiny-rwkv-6v0-bf16.pth");
const VOCAB = fixture("tokenizers/rwkv_vocab_v20230424.txt");

for (const f of listFixtures(/\.gguf$/, "gguf", "the GGUF fixtures")) {
  Deno.test(`gguf write: llama.cpp's own ${f} passes the loader rules we check ours with`, async () => {
    const g = await readGguf(`${gdir}/${f}`);
    try {
      assertEquals(await llamaCppProblems(g), []);
    } finally {
      g.close();
    }
  });
}

/** Writes `src` as GGUF of `type` into a temporary folder and hands the path to `fn`. */
async function withWritten(
  src: string,
  type: GgufType,
  name: string,
  fn: (path: string) => Promise<void>,
) {
  const { dir, cleanup } = await tempDir();
  try {
    const ck = await openCheckpoint(src);
    const out = `${dir}/${type}.gguf`;
    try {
      await writeGgufModel(ck, out, {
        type,
        name,
        tokenizer: VOCAB && !src.includes("tiny") ? VOCAB : undefined,
      });
    } finally {
      ck.close();
    }
    await fn(out);
  } finally {
    await cleanup();
  }
}

/** Metadata and every tensor's type, dims and bytes of two GGUF files; names of differing tensors. */
async function differences(a: string, b: string): Promise<string[]> {
  const x = await readGguf(a), y = await readGguf(b);
  try {
    const out: string[] = [];
    const s = (v: unknown) =>
      v instanceof Object ? JSON.stringify(Array.from(v as ArrayLike<unknown>)) : String(v);
    assertEquals([...x.metadata.keys()].sort(), [...y.metadata.keys()].sort(), "metadata keys");
    for (const [k, v] of x.metadata) {
      if (s(v) !== s(y.metadata.get(k)) || x.metadataTypes.get(k) !== y.metadataTypes.get(k)) {
        out.push(`metadata ${k}`);
      }
    }
    assertEquals([...x.tensors.keys()].sort(), [...y.tensors.keys()].sort(), "tensor names");
    for (const [n, t] of x.tensors) {
      const u = y.tensors.get(n)!;
      if (t.type !== u.type || t.dims.join() !== u.dims.join()) out.push(`${n} type/dims`);
      else if ((await x.readRaw(n)).join() !== (await y.readRaw(n)).join()) out.push(n);
    }
    return out;
  } finally {
    x.close();
    y.close();
  }
}

for (
  const [type, file] of [["f16", "rwkv7-2x256-F16.gguf"], [
    "q8_0",
    "rwkv7-2x256-Q8_0.gguf",
  ]] as const
) {
  Deno.test({
    name: `gguf write: rand-rwkv7 .pth as ${type} is byte for byte llama.cpp's ${file}`,
    ignore: !R7 || !VOCAB || !fixture(`gguf/${file}`),
    fn: () =>
      withWritten(R7!, type, "rwkv7-2x256", async (out) => {
        assertEquals(await differences(out, `${gdir}/${file}`), []);
      }),
  });
}

Deno.test({
  name:
    "gguf write: tiny-rwkv-6v0 .pth as q8_0 is llama.cpp's file but for token_embd's f16 detour",
  ignore: !T6 || !fixture("gguf/tiny-rwkv-6v0-Q8_0.gguf"),
  fn: () =>
    withWritten(T6!, "q8_0", "tiny-rwkv-6v0", async (out) => {
      // llama-quantize made its Q8_0 from an F16 file: embedding values below f16's normal range
      // were rounded there first (22 of 34816 bytes of token_embd differ); we quantize the bf16
      // values themselves. Every other tensor and the metadata are llama.cpp's, byte for byte.
      assertEquals(await differences(out, `${gdir}/tiny-rwkv-6v0-Q8_0.gguf`), [
        "token_embd.weight",
      ]);
    }),
});

/** q·d per block, checked against ggml's reference quantizers' definition. */
function checkBlocks(type: GgufType, x: Float32Array, y: Float32Array, what: string) {
  const F = Math.fround;
  for (let b = 0; b < x.length / 32; b++) {
    const v = x.subarray(b * 32, b * 32 + 32), got = y.subarray(b * 32, b * 32 + 32);
    let amax = 0, max = 0;
    for (const e of v) {
      if (amax < Math.abs(e)) {
        amax = Math.abs(e);
        max = e;
      }
    }
    const d32 = type === "q8_0" ? F(amax / 127) : F(max / -8);
    const d = halfToFloat(floatToHalf(d32)), id = d32 ? F(1 / d32) : 0;
    for (let j = 0; j < 32; j++) {
      let q: number;
      if (type === "q8_0") {
        const t = F(v[j] * id); // roundf: halves away from zero
        q = Math.sign(t) * Math.floor(Math.abs(t) + 0.5);
      } else q = Math.min(15, Math.trunc(v[j] * id + 8.5)) - 8;
      if (!Object.is(got[j] + 0, F(q * d) + 0)) {
        throw new Error(`${what} block ${b} value ${j}: ${got[j]}, ${type} defines ${q}·${d}`);
      }
    }
  }
}

for (const type of ["bf16", "f16", "q8_0", "q4_0"] as const) {
  Deno.test({
    name:
      `gguf write: rand-rwkv7 .pth as ${type} reads back as the type defines, llama.cpp's rules hold, logits ${
        type === "bf16" || type === "f16" ? "match the official ones" : "close"
      }`,
    ignore: !R7 || !VOCAB || !fixture("gguf/official-rwkv7-2x256.json"),
    fn: () =>
      withWritten(R7!, type, "rwkv7-2x256", async (out) => {
        const g = await readGguf(out);
        try {
          assertEquals(await llamaCppProblems(g), []);
        } finally {
          g.close();
        }
        const a = await openCheckpoint(out), src = await openCheckpoint(R7!);
        try {
          assertEquals(
            [...a.tensors.keys()].filter((n) => !n.endsWith(".qscale")).sort(),
            [...src.tensors.keys()].sort(),
          );
          for (const [n, s] of src.tensors) {
            const x = toFloat32(await src.read(n), s.dtype);
            const info = a.tensors.get(n)!;
            const q = a.blockQuantized?.get(n);
            let y: Float32Array;
            if (q) {
              const scales = toFloat32(await a.read(q.scale.name), "F32");
              const raw = await a.read(n);
              y = new Float32Array(q.rows * q.cols);
              for (let i = 0; i < y.length; i++) {
                const v = q.quant === "q8"
                  ? (raw[i] << 24) >> 24
                  : (i % 32 < 16
                    ? raw[(i >> 5) * 16 + (i % 32)] & 15
                    : raw[(i >> 5) * 16 + (i % 32) - 16] >> 4) - 8;
                y[i] = Math.fround(v * scales[i >> 5]);
              }
            } else y = toFloat32(await a.read(n), info.dtype);
            if ((type === "q8_0" || type === "q4_0") && q) checkBlocks(type, x, y, n);
            else if (info.dtype === "F16") {
              for (let i = 0; i < x.length; i++) {
                assert(
                  y[i] === halfToFloat(floatToHalf(x[i])),
                  `${n}[${i}]: ${y[i]} is not f16(${x[i]})`,
                );
              }
            } else {
              for (let i = 0; i < x.length; i++) {
                assert(x[i] === y[i], `${n}[${i}]: ${y[i]}, source ${x[i]}`);
              }
            }
          }
        } finally {
          a.close();
          src.close();
        }
        // Logits of B: bf16 and f16 against the official code on the .pth (f16 rounds the bf16
        // values below its normal range, the rest are exact); q8_0, which is llama.cpp's Q8_0
        // file byte for byte, against the official code on that file's weights. (q4_0 has no
        // reference computed on its weights: its blocks are checked against the definition.)
        if (type === "q4_0") return;
        const base = type === "q8_0" ? "rwkv7-2x256-Q8_0.official-deq" : "official-rwkv7-2x256";
        const ref = JSON.parse(await Deno.readTextFile(`${gdir}/${base}.json`));
        const all = new Float32Array((await Deno.readFile(`${gdir}/${base}.logits-B.f32`)).buffer);
        const model = await loadModel(out, { engine: "reference", dtype: "f32", device: "cpu" });
        try {
          const s = model.createState();
          let worst = 0;
          for (let i = 0; i < ref.tokens_B.length; i++) {
            const l = await model.forward([ref.tokens_B[i]], s);
            for (let j = 0; j < 512; j++) {
              worst = Math.max(worst, Math.abs(l[j] - all[i * 512 + j]));
            }
          }
          assert(worst <= 1e-4, `max abs diff ${worst} from ${base}`);
        } finally {
          await model.dispose();
        }
      }),
  });
}

Deno.test({
  name:
    "gguf write: tiny-rwkv-6v0 .pth as bf16 (RWKV-6, byte vocabulary) matches ref-6v0-bf16.json",
  ignore: !T6 || !fixture("ref-6v0-bf16.json"),
  fn: () =>
    withWritten(T6!, "bf16", "tiny-rwkv-6v0", async (out) => {
      const g = await readGguf(out);
      try {
        assertEquals(await llamaCppProblems(g), []);
        assertEquals(g.metadata.get("tokenizer.ggml.eot_token_id"), undefined);
      } finally {
        g.close();
      }
      const ref = JSON.parse(await Deno.readTextFile(`${FIXTURES_DIR}/ref-6v0-bf16.json`));
      const model = await loadModel(out, { engine: "reference", dtype: "f32", device: "cpu" });
      try {
        const s = model.createState();
        let l: Float32Array = new Float32Array(0);
        for (const t of ref.tokens_B) l = await model.forward([t], s);
        let worst = 0;
        for (let j = 0; j < l.length; j++) {
          worst = Math.max(worst, Math.abs(l[j] - ref.logits_B_last[j]));
        }
        assert(worst <= 1e-4, `max abs diff ${worst}`);
      } finally {
        await model.dispose();
      }
    }),
});

Deno.test("gguf write: RWKV-6 past rescale_every_n_layers (7 layers): layer 6 stored halved, read back whole", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const src = `${dir}/r6.safetensors`;
    await makeModel(src, "--version 6 --layers 7 --embd 64 --vocab 256 --head-size 16".split(" "));
    for (const type of ["bf16", "q8_0"] as const) {
      const out = `${dir}/r6-${type}.gguf`;
      const ck = await openCheckpoint(src);
      try {
        await writeGgufModel(ck, out, { type, tokenizer: "bytes" });
      } finally {
        ck.close();
      }
      const g = await readGguf(out), a = await openCheckpoint(out), s = await openCheckpoint(src);
      try {
        assertEquals(await llamaCppProblems(g), []);
        assertEquals(g.metadata.get("rwkv6.rescale_every_n_layers"), 6);
        for (
          const [name, gname] of [["att.output", "time_mix_output"], [
            "ffn.value",
            "channel_mix_value",
          ]]
        ) {
          const x = toFloat32(
            await s.read(`blocks.6.${name}.weight`),
            s.tensors.get(`blocks.6.${name}.weight`)!.dtype,
          );
          if (type === "bf16") {
            // stored halved (llama.cpp's converter), read back whole
            const stored = toFloat32(await g.readRaw(`blk.6.${gname}.weight`), "BF16");
            for (let i = 0; i < x.length; i++) assert(stored[i] === x[i] / 2, `${gname}[${i}]`);
            const back = toFloat32(await a.read(`blocks.6.${name}.weight`), "BF16");
            for (let i = 0; i < x.length; i++) assert(back[i] === x[i], `blocks.6.${name}[${i}]`);
          } else {
            // the blocks of x/2, scaled back by 2, are exactly the blocks of x
            const q = a.blockQuantized!.get(`blocks.6.${name}.weight`)!;
            const sc = toFloat32(await a.read(q.scale.name), "F32");
            const ints = new Int8Array((await a.read(`blocks.6.${name}.weight`)).buffer);
            checkBlocks(
              "q8_0",
              x,
              Float32Array.from(ints, (v, i) => Math.fround(v * sc[i >> 5])),
              name,
            );
          }
        }
      } finally {
        g.close();
        a.close();
        s.close();
      }
      // the model computes as the source does (bf16: the very values)
      if (type !== "bf16") continue;
      const m1 = await loadModel(out, { engine: "reference", dtype: "f32", device: "cpu" });
      const m2 = await loadModel(src, { engine: "reference", dtype: "f32", device: "cpu" });
      try {
        const s1 = m1.createState(), s2 = m2.createState();
        let worst = 0;
        for (const t of [1, 50, 99, 200, 7, 33]) {
          const l1 = await m1.forward([t], s1), l2 = await m2.forward([t], s2);
          for (let j = 0; j < l1.length; j++) worst = Math.max(worst, Math.abs(l1[j] - l2[j]));
        }
        assert(worst <= 1e-5, `logits differ by ${worst}`);
      } finally {
        await m1.dispose();
        await m2.dispose();
      }
    }
  } finally {
    await cleanup();
  }
});
