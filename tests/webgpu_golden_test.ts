/**
 * The WebGPU backend against the official implementation's outputs, on whatever adapter the
 * machine has (CI: Mesa's software adapter).
 */
import { createWebGpuModel } from "../lib/backend/webgpu/mod.ts";
import { assertMatchesGolden, goldens, openGolden } from "./_golden.ts";
import { HAVE_WEBGPU } from "./_webgpu.ts";

for (const g of goldens()) {
  Deno.test({
    name: `webgpu golden: f32 storage matches official ${g.file} (RWKV-${g.official_version})`,
    ignore: !HAVE_WEBGPU,
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
