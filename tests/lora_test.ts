import { applyLora, findLoraPairs, mergeLora } from "../convert/lora.ts";
import { UsageError } from "../lib/errors.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { toFloat32 } from "../lib/formats/dtype.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { writePth } from "../lib/formats/pth_write.ts";
import { loadModel } from "../lib/load.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { randomFloats } from "../testing/random.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

/** Seeded values in [-amp/2, amp/2). */
const random = (n: number, seed: number, amp = 0.1) => randomFloats(n, seed, -amp / 2, amp / 2);

function f32(name: string, shape: number[], data: Float32Array): TensorToWrite {
  return { name, dtype: "F32", shape, data: () => new Uint8Array(data.buffer) };
}

Deno.test("lora: pairs found under RWKV-LM-LoRA and PEFT names; orphans refused", () => {
  const t = (names: string[]) => ({ tensors: new Map(names.map((n) => [n, {} as never])) });
  const pairs = findLoraPairs(t([
    "blocks.0.att.key.lora_A",
    "blocks.0.att.key.lora_B",
    "base_model.model.blocks.1.ffn.value.lora_A.weight",
    "base_model.model.blocks.1.ffn.value.lora_B.weight",
    "blocks.0.ln1.weight",
  ]));
  assertEquals([...pairs.keys()], ["blocks.0.att.key.weight", "blocks.1.ffn.value.weight"]);
  let threw = false;
  try {
    findLoraPairs(t(["blocks.0.att.key.lora_A"]));
  } catch (e) {
    threw = e instanceof UsageError;
  }
  assert(threw, "lora_A without lora_B refused");
});

Deno.test({
  name: "lora: merge gives W + B·A·alpha/r on every target, untouched elsewhere",
  ignore: !MODEL,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const base = await openCheckpoint(MODEL!);
      const targets = [
        "blocks.0.att.key.weight",
        "blocks.2.att.receptance.weight",
        "blocks.5.ffn.key.weight",
      ];
      const r = 4, alpha = 8;
      const lora: TensorToWrite[] = [];
      const ab = new Map<string, { a: Float32Array; b: Float32Array }>();
      targets.forEach((name, i) => {
        const [out, inn] = base.tensors.get(name)!.shape;
        const a = random(r * inn, 10 + i), b = random(out * r, 20 + i);
        ab.set(name, { a, b });
        const stem = name.slice(0, -".weight".length);
        lora.push(f32(`${stem}.lora_A`, [r, inn], a), f32(`${stem}.lora_B`, [out, r], b));
      });
      // a fully trained tensor travels in the LoRA file too (RWKV-LM-LoRA saves ln weights)
      const ln = random(64, 99, 1);
      lora.push(f32("blocks.1.ln1.weight", [64], ln));
      const loraPath = `${dir}/lora.pth`;
      await writePth(loraPath, lora); // as torch.save would: a .pth
      const out = `${dir}/merged.safetensors`;
      const report = await mergeLora(MODEL!, loraPath, out, { alpha });
      assertEquals(report.merged.sort(), [...targets].sort());
      assertEquals(report.replaced, ["blocks.1.ln1.weight"]);

      const merged = await openCheckpoint(out);
      try {
        assertEquals([...merged.tensors.keys()].sort(), [...base.tensors.keys()].sort());
        for (const [name, info] of base.tensors) {
          const w = toFloat32(await base.read(name), info.dtype);
          const got = toFloat32(await merged.read(name), merged.tensors.get(name)!.dtype);
          if (ab.has(name)) {
            const { a, b } = ab.get(name)!;
            const [o, inn] = info.shape;
            let maxErr = 0, changed = 0;
            for (let p = 0; p < o; p++) {
              for (let q = 0; q < inn; q++) {
                let s = 0;
                for (let k = 0; k < r; k++) s += b[p * r + k] * a[k * inn + q];
                const want = w[p * inn + q] + s * alpha / r;
                const v = got[p * inn + q];
                maxErr = Math.max(maxErr, Math.abs(v - want) / Math.max(1, Math.abs(want)));
                if (v !== w[p * inn + q]) changed++;
              }
            }
            assert(maxErr <= 2 ** -23, `${name}: relative error ${maxErr} beyond f32 rounding`);
            assert(changed > o * inn * 0.9, `${name}: the update reached the weights`);
          } else if (name === "blocks.1.ln1.weight") {
            assertEquals(got, ln);
          } else {
            assertEquals(got, w, `${name} untouched`);
          }
        }
      } finally {
        merged.close();
        base.close();
      }
      // the merged file loads and runs
      const model = await loadModel(out, { backend: "reference" });
      const logits = await model.forward([34, 105, 110], model.createState());
      assert(logits.every(Number.isFinite));
      await model.dispose();

      // bad shapes are refused before anything is written
      const badLora = `${dir}/bad.safetensors`;
      await writeSafetensors(badLora, [
        f32("blocks.0.att.key.lora_A", [r, 3], random(r * 3, 1)),
        f32("blocks.0.att.key.lora_B", [64, r], random(64 * r, 2)),
      ]);
      await assertRejects(
        () => mergeLora(MODEL!, badLora, `${dir}/bad-out.safetensors`, { alpha }),
        UsageError,
        "shapes do not fit",
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test("lora: applyLora on a tiny case", () => {
  // W (2×3), A (1×3), B (2×1), scale 2
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  const got = applyLora(w, new Float32Array([1, 0, -1]), new Float32Array([0.5, 2]), 2, 3, 1, 2);
  assertEquals(Array.from(got), [2, 2, 2, 8, 5, 2]);
});
