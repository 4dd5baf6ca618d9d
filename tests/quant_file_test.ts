/**
 * The compact quantized model file (`rwkv-deno-quant`, docs/QUANT_FORMAT.md): written and
 * validated by lib/quant, loaded by lib/model/weights.ts without re-quantizing.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { withQuantized } from "./_with.ts";
import { FormatError, UsageError } from "../lib/errors.ts";
import type { Checkpoint } from "../lib/formats/checkpoint.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { createReferenceModel } from "../lib/backend/reference/mod.ts";
import { loadModel } from "../lib/load.ts";
import { detectSpec } from "../lib/spec/spec.ts";
import { loadWeights } from "../lib/model/weights.ts";
import { groupedByte, KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";
import type { StorageDType } from "../lib/model/tensor.ts";
import { f32ToF16, fromFloat32, toFloat32 } from "../lib/formats/dtype.ts";
import {
  dequantizeQ4,
  dequantizeQ8,
  isQuantizable,
  quantizeQ4,
  quantizeQ8,
  writeQuantized,
} from "../lib/quant/mod.ts";

const st7 = fixture("tiny-rwkv-7v0.safetensors");
const TOKENS = [34, 105, 110, 32, 116, 104, 101, 32, 98, 101, 103, 105, 110];

/** Logits after each of TOKENS (fed one call per token), concatenated. */
async function run(ck: Checkpoint, dtype?: StorageDType): Promise<Float32Array> {
  const model = await createReferenceModel(ck, dtype ? { dtype } : {});
  try {
    const state = model.createState();
    const out = new Float32Array(TOKENS.length * model.info.vocab);
    for (let i = 0; i < TOKENS.length; i++) {
      out.set(await model.forward([TOKENS[i]], state), i * model.info.vocab);
    }
    return out;
  } finally {
    await model.dispose();
  }
}

Deno.test({
  name: "quant file: q8/q4 files give logits identical to quantizing the source on load",
  ignore: !st7,
  fn: async () => {
    await withQuantized(st7!, ["q8", "q4"], async (out, quant, src) => {
      let params = 0, largeParams = 0;
      for (const t of src.tensors.values()) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        params += n;
        if (isQuantizable(t.name, t.shape)) largeParams += n;
      }
      const ck = await openSafetensors(out);
      try {
        assertEquals(ck.metadata, {
          format: "rwkv-deno-quant",
          format_version: "3",
          quant,
          block_size: "32",
          rwkv_version: "7",
          source: "tiny-rwkv-7v0.safetensors",
          tokenizer: "bytes",
        });
        const key = ck.tensors.get("blocks.0.att.key.weight")!;
        assertEquals(key.dtype, quant === "q8" ? "I8" : "U8");
        assertEquals(key.shape, [64, quant === "q8" ? 64 : 32]);
        const scale = ck.tensors.get("blocks.0.att.key.weight.qscale")!;
        assertEquals([scale.dtype, scale.shape], ["BF16", [64, 2]]);
        // the embedding is block-quantized too; small tensors stay float, as in the source
        assertEquals(ck.tensors.get("emb.weight")!.dtype, quant === "q8" ? "I8" : "U8");
        assertEquals(ck.tensors.get("emb.weight.qscale")!.shape, [256, 2]);
        assertEquals(ck.tensors.get("blocks.0.att.w1")!.dtype, "F32");

        // loading copies the stored integers: the arena holds the file's bytes, each row
        // where the Worker kernels' grouped layout puts it (backend/wasm/layout.ts)
        const { weights } = await loadWeights(ck, detectSpec(ck.tensors, out), {
          layout: KERNEL_LAYOUT,
        });
        assertEquals(weights.layout.dtype, quant);
        const m = weights.mat("blocks.0.ffn.value.weight");
        assertEquals(m.dtype, quant);
        const stored = await ck.read("blocks.0.ffn.value.weight");
        const arena = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
        const rowBytes = quant === "q8" ? m.cols : m.cols / 2;
        const placed = new Uint8Array(stored.length);
        for (let r = 0; r < m.rows; r++) {
          for (let p = 0; p < rowBytes; p++) {
            placed[r * rowBytes + p] = arena[groupedByte(r, p, m.rows, m.cols, quant)];
          }
        }
        assertEquals(placed, stored);

        const fromFile = await run(ck);
        const onLoad = await run(src, quant);
        assertEquals(fromFile, onLoad, `${quant} logits`);
        // asking another dtype of a quantized file dequantizes: the values q × scale exactly
        const f32 = await loadWeights(ck, detectSpec(ck.tensors, out), { dtype: "f32" });
        const name = "blocks.2.ffn.key.weight";
        const values = toFloat32(await src.read(name), "F32");
        const r = quant === "q8" ? quantizeQ8(values) : quantizeQ4(values);
        const expected = quant === "q8"
          ? dequantizeQ8(r.q as Int8Array, r.scales)
          : dequantizeQ4(r.q as Uint8Array, r.scales);
        assertEquals(f32.weights.mat(name).data, expected, `${quant} file loaded as f32`);

        // sizes: the large matrices, and the whole file
        let largeBytes = 0;
        for (const t of ck.tensors.values()) {
          if (t.dtype === "I8" || t.dtype === "U8" || t.name.endsWith(".qscale")) {
            largeBytes += t.byteLength;
          }
        }
        const fileBytes = (await Deno.stat(out)).size;
        const header = fileBytes - [...ck.tensors.values()].reduce((a, t) => a + t.byteLength, 0);
        const limit = quant === "q8" ? 1.07 : 0.6;
        console.log(
          `${quant}: large matrices and embedding ${largeBytes} B for ${largeParams} params ` +
            `(${(largeBytes / largeParams).toFixed(4)} B/param, limit ${limit}); whole file ` +
            `${fileBytes} B for ${params} params (${(fileBytes / params).toFixed(4)} B/param, ` +
            `header ${header} B; low-rank factors and vectors stay f32)`,
        );
        assert(largeBytes <= limit * largeParams, `${quant} large matrices too big`);
      } finally {
        ck.close();
      }
    });
  },
});

Deno.test({
  name: "quant file: f32/bf16/f16 files give logits identical to loading the source",
  ignore: !st7,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const src = await openSafetensors(st7!);
    try {
      for (const quant of ["f32", "bf16", "f16"] as const) {
        const out = `${dir}/tiny-${quant}.safetensors`;
        await writeQuantized(src, out, { quant, tokenizer: "custom", source: "x.pth" });
        const ck = await openSafetensors(out);
        try {
          assertEquals(ck.metadata.quant, quant);
          assertEquals([ck.metadata.tokenizer, ck.metadata.source], ["custom", "x.pth"]);
          assert(![...ck.tensors.keys()].some((n) => n.endsWith(".qscale")));
          assertEquals(
            ck.tensors.get("blocks.0.att.key.weight")!.dtype,
            quant.toUpperCase() as "F32",
          );
          assertEquals(await run(ck), await run(src, quant), `${quant} logits`);
        } finally {
          ck.close();
        }
      }
    } finally {
      src.close();
      await cleanup();
    }
  },
});

/** Rewrites the SafeTensors file `from` to `to` after editing its tensor list and metadata. */
async function rewrite(
  from: string,
  to: string,
  edit: (tensors: TensorToWrite[], metadata: Record<string, string>) => void,
): Promise<void> {
  const ck = await openSafetensors(from);
  try {
    const tensors: TensorToWrite[] = [...ck.tensors.values()].map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: () => ck.read(t.name),
    }));
    const metadata = { ...ck.metadata };
    edit(tensors, metadata);
    await writeSafetensors(to, tensors, { metadata, overwrite: true });
  } finally {
    ck.close();
  }
}

Deno.test({
  name: "quant file: contradictory files give a FormatError naming the file and the tensor",
  ignore: !st7,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const src = await openSafetensors(st7!);
    try {
      const q8 = `${dir}/q8.safetensors`, q4 = `${dir}/q4.safetensors`;
      await writeQuantized(src, q8, { quant: "q8" });
      await writeQuantized(src, q4, { quant: "q4" });
      const K = "blocks.1.att.key.weight";
      const at = (ts: TensorToWrite[], name: string) => ts.findIndex((t) => t.name === name);
      const cases: [
        string,
        string,
        (ts: TensorToWrite[], m: Record<string, string>) => void,
        RegExp,
      ][] = [
        [
          "no-version",
          q8,
          (_, m) => delete m.format_version,
          /__metadata__\.format_version: missing/,
        ],
        ["version-4", q8, (_, m) => m.format_version = "4", /version 4 is not supported/],
        // version 2 stored F16 scales, version 3 BF16: each is held to its own
        ["v2-bf16-scales", q8, (_, m) => m.format_version = "2", /scales are BF16, expected F16/],
        // version 1 files keep the embedding in float: a quantized one contradicts them
        ["v1-emb", q8, (_, m) => m.format_version = "1", /emb\.weight: shape \[256,64\] is not/],
        ["no-quant", q8, (_, m) => delete m.quant, /__metadata__\.quant: missing/],
        ["bad-quant", q8, (_, m) => m.quant = "q3", /unknown scheme "q3"/],
        ["block-64", q8, (_, m) => m.block_size = "64", /block_size/],
        ["wrong-version", q8, (_, m) => m.rwkv_version = "4", /rwkv_version: says 4/],
        ["q8-says-u8", q4, (_, m) => m.quant = "q8", /stored as U8, but quant q8 stores I8/],
        ["f32-with-scales", q8, (_, m) => m.quant = "f32", /\.qscale: quant is f32/],
        ["scale-shape", q8, (ts) => {
          const i = at(ts, `${K}.qscale`);
          ts[i] = { ...ts[i], shape: [32, 4] };
        }, new RegExp(`${K}\\.qscale: scale shape \\[32,4\\]`)],
        ["scale-dtype", q8, (ts) => {
          const i = at(ts, `${K}.qscale`);
          ts[i] = { ...ts[i], dtype: "F16" };
        }, /scales are F16, expected BF16/],
        ["no-scales", q8, (ts) => void ts.splice(at(ts, `${K}.qscale`), 1), /without its/],
        ["orphan-scales", q8, (ts) => void ts.splice(at(ts, K), 1), /scales without/],
        ["matrix-dtype", q8, (ts) => {
          const i = at(ts, K);
          ts[i] = { ...ts[i], dtype: "U8" };
        }, /stored as U8/],
      ];
      for (const [name, from, edit, re] of cases) {
        const p = `${dir}/${name}.safetensors`;
        await rewrite(from, p, edit);
        const ck = await openSafetensors(p);
        try {
          const e = await assertRejects(() => createReferenceModel(ck), FormatError, re);
          assert(e.message.includes(p), `${name}: names the file: ${e.message}`);
        } finally {
          ck.close();
        }
      }
      // an already quantized file is not quantized again
      const ck = await openSafetensors(q8);
      await assertRejects(
        () => writeQuantized(ck, `${dir}/again.safetensors`, { quant: "q4" }),
        UsageError,
      );
      ck.close();
    } finally {
      src.close();
      await cleanup();
    }
  },
});

Deno.test({
  name: "quant file: nothing partial is written on failure; no overwrite without force",
  ignore: !st7,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const src = await openSafetensors(st7!);
    try {
      let reads = 0;
      const failing: Checkpoint = {
        ...src,
        path: src.path,
        format: src.format,
        tensors: src.tensors,
        metadata: src.metadata,
        read: (name, into) => {
          if (++reads === 20) return Promise.reject(new Error("disk on fire"));
          return src.read(name, into);
        },
        close: () => {},
      };
      const out = `${dir}/out.safetensors`;
      await assertRejects(() => writeQuantized(failing, out, { quant: "q8" }), Error, /on fire/);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), []);

      await writeQuantized(src, out, { quant: "q4" });
      const before = await Deno.readFile(out);
      await assertRejects(() => writeQuantized(src, out, { quant: "q8" }), FormatError, /exists/);
      assertEquals(await Deno.readFile(out), before);
      await writeQuantized(src, out, { quant: "q8", force: true });
      const ck = await openSafetensors(out);
      assertEquals(ck.metadata.quant, "q8");
      ck.close();
      await assertRejects(
        () => writeQuantized(src, out, { quant: "q2" as "q8", force: true }),
        UsageError,
      );
    } finally {
      src.close();
      await cleanup();
    }
  },
});

Deno.test({
  name: "quant file: the wasm backend runs a q8/q4 file exactly as it runs the source quantized",
  ignore: !st7,
  fn: async () => {
    await withQuantized(st7!, ["q8", "q4"], async (out, quant) => {
      const a = await loadModel(out, { backend: "wasm", threads: 2 });
      const b = await loadModel(st7!, { backend: "wasm", threads: 2, dtype: quant });
      try {
        assertEquals(a.info.dtype, quant);
        assertEquals(a.info.weightBytes, b.info.weightBytes);
        const la = await a.forward(TOKENS, a.createState());
        const lb = await b.forward(TOKENS, b.createState());
        assertEquals(la, lb, `${quant} wasm backend logits`);
      } finally {
        await a.dispose();
        await b.dispose();
      }
    });
  },
});

const pth4 = fixture("tiny-rwkv-4v0.pth");

/**
 * The f16 scales of format version 2 rounded the scale of every block whose largest magnitude
 * was under ~3.8e-6 (q8: 127 · 2^-25; q4: 8 · 2^-25) to zero: measured on tiny-rwkv-4v0.pth,
 * 7808 of its 11264 q8 blocks (all of blocks.0.ffn.key.weight) and 4 q4 blocks. Version 3's bf16
 * scales keep every one of them.
 */
Deno.test({
  name: "quant file: q8 and q4 files of tiny-rwkv-4v0 keep every non-zero block non-zero",
  ignore: !pth4,
  fn: async () => {
    await withQuantized(pth4!, ["q8", "q4"], async (out, quant, src) => {
      const ck = await openSafetensors(out);
      try {
        let blocks = 0, f16Zero = 0;
        for (const [name, t] of ck.tensors) {
          if (name.endsWith(".qscale") || (t.dtype !== "I8" && t.dtype !== "U8")) continue;
          const info = src.tensors.get(name)!;
          const want = toFloat32(await src.read(name), info.dtype);
          const raw = await ck.read(name);
          const scaleInfo = ck.tensors.get(`${name}.qscale`)!;
          const scales = toFloat32(await ck.read(scaleInfo.name), scaleInfo.dtype);
          const got = quant === "q8"
            ? dequantizeQ8(new Int8Array(raw.buffer, raw.byteOffset, raw.length), scales)
            : dequantizeQ4(raw, scales);
          for (let b = 0; b < want.length / 32; b++) {
            let amax = 0, any = false;
            for (let i = b * 32; i < b * 32 + 32; i++) {
              amax = Math.max(amax, Math.abs(want[i]));
              if (got[i] !== 0) any = true;
            }
            blocks++;
            const d = quant === "q8" ? amax / 127 : amax / 8;
            if (amax > 0 && (f32ToF16(Float32Array.of(d))[0] & 0x7fff) === 0) f16Zero++;
            assert(
              amax === 0 || any,
              `${quant} ${name} block ${b} (max |x| ${amax}) became zero`,
            );
          }
        }
        console.log(`${quant}: ${blocks} blocks, ${f16Zero} had an f16 scale of 0, none zeroed`);
        assert(f16Zero > 0, "the fixture still has the tiny blocks this test is about");
      } finally {
        ck.close();
      }
    });
  },
});

Deno.test({
  name: "quant file: version 2 files (F16 scales) still load, scales widened exactly",
  ignore: !st7,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const src = await openSafetensors(st7!);
    try {
      const v3 = `${dir}/v3.safetensors`, v2 = `${dir}/v2.safetensors`;
      await writeQuantized(src, v3, { quant: "q8" });
      // a version 2 file as the old writer made it: the same integers, F16 scales
      const halves = new Map<string, Uint8Array>();
      const ck3 = await openSafetensors(v3);
      for (const [name, t] of ck3.tensors) {
        if (!name.endsWith(".qscale")) continue;
        const h = f32ToF16(toFloat32(await ck3.read(name), t.dtype));
        halves.set(name, new Uint8Array(h.buffer));
      }
      ck3.close();
      await rewrite(v3, v2, (ts, m) => {
        m.format_version = "2";
        for (let i = 0; i < ts.length; i++) {
          const h = halves.get(ts[i].name);
          if (h) ts[i] = { ...ts[i], dtype: "F16", data: () => h };
        }
      });
      const ck = await openSafetensors(v2);
      try {
        const name = "blocks.1.att.value.weight";
        const f32 = await loadWeights(ck, detectSpec(ck.tensors, v2), { dtype: "f32" });
        const raw = await ck.read(name);
        const scales = toFloat32(halves.get(`${name}.qscale`)!, "F16");
        const expected = dequantizeQ8(
          new Int8Array(raw.buffer, raw.byteOffset, raw.length),
          scales,
        );
        assertEquals(f32.weights.mat(name).data, expected);
        // and the model runs from it
        const logits = await run(ck);
        assert(logits.every(Number.isFinite));
        assertEquals(fromFloat32(scales, "F16"), halves.get(`${name}.qscale`));
      } finally {
        ck.close();
      }
    } finally {
      src.close();
      await cleanup();
    }
  },
});
