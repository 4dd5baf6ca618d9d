/**
 * The WebGPU backend against the official implementation's outputs, on whatever adapter the
 * machine has (CI: Mesa's software adapter).
 */
import { createWebGpuModel } from "../lib/backend/webgpu/mod.ts";
import { assertMatchesGolden, goldens, openGolden } from "./_golden.ts";
import { webgpuTest } from "./_webgpu.ts";

for (const g of goldens()) {
  webgpuTest(import.meta.url, {
    name: `webgpu golden: f32 storage matches official ${g.file} (RWKV-${g.official_version})`,
    fn: async () => {
      const ck = await openGolden(g);
      const model = await createWebGpuModel(ck, { dtype: "f32" }).finally(() => ck.close());
      try {
        await assertMatchesGolden(model, g);
      } finally {
        await model.dispose();
      }
    },
  });
}

webgpuTest(import.meta.url, {
  name: "webgpu golden: every matrix split into parts of 4 KiB still matches ref-7v0.json",
  ignore: !goldens().some((g) => g.file === "ref-7v0.json"),
  fn: async () => {
    const g = goldens().find((g) => g.file === "ref-7v0.json")!;
    const ck = await openGolden(g);
    // (the embedding and head, 256 × 64 f32, become 16 parts each: as a 1.5B model's would on a
    // 128 MiB binding limit)
    const model = await createWebGpuModel(ck, { dtype: "f32", maxPartBytes: 4096 })
      .finally(() => ck.close());
    try {
      await assertMatchesGolden(model, g);
    } finally {
      await model.dispose();
    }
  },
});
