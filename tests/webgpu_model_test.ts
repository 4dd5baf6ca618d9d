/**
 * The WebGPU backend as a whole: every storage type against the reference path on the same
 * weights, prompt mode = token by token, states moved between backends, batches, dispose, and
 * the adapter choice.
 */
import { createWebGpuModel } from "../lib/backend/webgpu/mod.ts";
import { hasHardwareGpu, openGpu } from "../lib/backend/webgpu/mod.ts";
import { UsageError } from "../lib/errors.ts";
import { createReferenceModel } from "../lib/backend/reference/mod.ts";
import type { Model } from "../lib/model/model.ts";
import type { WeightDType } from "../lib/model/weights.ts";
import { assert, assertEquals, assertRejects, maxAbsDiff } from "./_assert.ts";
import { type Golden, goldens, openGolden } from "./_golden.ts";
import { webgpuTest } from "./_webgpu.ts";

const all = goldens();
const byFile = (f: string): Golden | undefined => all.find((g) => g.file === f);

async function both(
  g: Golden,
  dtype: WeightDType,
  fn: (gpu: Model, ref: Model) => Promise<void>,
): Promise<void> {
  const ck = await openGolden(g);
  let gpu: Model | undefined;
  try {
    const ref = await createReferenceModel(ck, { dtype });
    gpu = await createWebGpuModel(ck, { dtype, chunk: 32 });
    ck.close();
    await fn(gpu, ref);
  } finally {
    ck.close();
    await gpu?.dispose();
  }
}

/**
 * Bound on the logits against the reference path on the same storage (the weights are the same
 * numbers; only the order of float additions differs). Measured on llvmpipe over every fixture
 * and bf16/f16/q8/q4: at most 5.0e-6 (q8, ref-5v1-f16); 2e-5 leaves a 4× margin.
 */
const STORAGE_BOUND = 2e-5;

for (const g of all) {
  const dtypes: WeightDType[] = ["bf16", "f16", "q8", "q4"];
  webgpuTest(import.meta.url, {
    name: `webgpu: ${g.file} in ${
      dtypes.join("/")
    } storage = the reference path on the same weights`,
    fn: async () => {
      for (const dtype of dtypes) {
        await both(g, dtype, async (gpu, ref) => {
          assertEquals(gpu.info.dtype, dtype);
          // all of B in one call (prompt mode, chunks of 32), every position
          const a = await gpu.forwardAll(g.tokens_B, gpu.createState());
          const sr = ref.createState();
          const b = await ref.forwardAll(g.tokens_B, sr);
          const d = maxAbsDiff(a, b);
          assert(d <= STORAGE_BOUND, `${g.file} ${dtype}: logits differ by ${d}`);
          // token by token from a fresh state, the first 6 tokens
          const s = gpu.createState();
          for (let i = 0; i < 6; i++) {
            const l = await gpu.forward([g.tokens_B[i]], s);
            const V = gpu.info.vocab;
            const e = maxAbsDiff(l, b.subarray(i * V, (i + 1) * V));
            assert(e <= STORAGE_BOUND, `${g.file} ${dtype}: step ${i} differs by ${e}`);
          }
        });
      }
    },
  });
}

const g7 = byFile("ref-7v0.json"), g4 = byFile("ref-4v0.json");

for (const g of [g7, g4]) {
  if (!g) continue;
  webgpuTest(import.meta.url, {
    name: `webgpu: ${g.file} states move between backends and batches equal single runs`,
    fn: () =>
      both(g, "f32", async (gpu, ref) => {
        // a state computed on the CPU continues on the GPU with the CPU's logits, and back
        const onCpu = ref.createState();
        await ref.forward(g.tokens_A, onCpu);
        const moved = gpu.createState();
        moved.copyFrom(onCpu);
        const next = g.tokens_B.slice(0, 4);
        const lg = await gpu.forward(next, moved);
        const lc = await ref.forward(next, onCpu);
        assert(maxAbsDiff(lg, lc) <= 1e-5, `CPU → GPU: ${maxAbsDiff(lg, lc)}`);
        assert(maxAbsDiff(moved.data, onCpu.data) <= 1e-5, "states after the move");
        const back = ref.createState();
        back.copyFrom(moved);
        const l2 = await ref.forward([g.tokens_B[4]], back);
        const l1 = await gpu.forward([g.tokens_B[4]], moved);
        assert(maxAbsDiff(l1, l2) <= 1e-5, `GPU → CPU: ${maxAbsDiff(l1, l2)}`);
        // a batch of a prompt and a single token = each alone
        const s1 = gpu.createState(), s2 = gpu.createState();
        await gpu.forward([g.tokens_B[0]], s2);
        const [b1, b2] = await gpu.forwardBatch([
          { tokens: g.tokens_A, state: s1 },
          { tokens: [g.tokens_B[1]], state: s2 },
        ]);
        const a1 = await gpu.forward(g.tokens_A, gpu.createState());
        const t2 = gpu.createState();
        await gpu.forward([g.tokens_B[0]], t2);
        const a2 = await gpu.forward([g.tokens_B[1]], t2);
        assertEquals(maxAbsDiff(b1, a1), 0, "batch item 0");
        assertEquals(maxAbsDiff(b2, a2), 0, "batch item 1");
        // a state kept on the device: its values read at home, changed there, are used next
        const kept = gpu.createState();
        await gpu.forward(g.tokens_A, kept);
        await gpu.forward([g.tokens_B[0]], kept); // from the device's slot
        kept.copyFrom(ref.createState()); // back to a fresh state, at home
        const fresh = await gpu.forward([g.tokens_B[1]], kept);
        const want = await ref.forward([g.tokens_B[1]], ref.createState());
        assert(
          maxAbsDiff(fresh, want) <= 1e-5,
          `a state changed at home: ${maxAbsDiff(fresh, want)}`,
        );
      }),
  });
}

webgpuTest(import.meta.url, {
  name: "webgpu: dispose frees the device, and a disposed model refuses to run",
  ignore: !g7,
  fn: async () => {
    const ck = await openGolden(g7!);
    const model = await createWebGpuModel(ck, { dtype: "f32" }).finally(() => ck.close());
    await model.forward([1], model.createState());
    await model.dispose();
    await assertRejects(() => model.forward([1], model.createState()), UsageError, "disposed");
    // the device itself: destroying it resolves `lost` with reason "destroyed"
    const gpu = await openGpu();
    gpu.destroy();
    assertEquals((await gpu.device.lost).reason, "destroyed");
  },
});

webgpuTest(import.meta.url, {
  name: "webgpu: a software adapter is refused where a hardware one is required, a GPU is taken",
  fn: async () => {
    // the adapter's own word, read here apart from the backend's reading of it
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    assert(adapter, "an adapter was found a moment ago");
    if (adapter.info.isFallbackAdapter) {
      await assertRejects(() => openGpu({ adapter: "hardware" }), UsageError, "software");
      assertEquals(await hasHardwareGpu(), false, "a software adapter counts as no GPU");
    } else {
      // a real GPU: accepted where hardware is required, and what device "auto" picks
      const gpu = await openGpu({ adapter: "hardware" });
      try {
        assertEquals(gpu.isFallback, false);
        assertEquals(await hasHardwareGpu(), true, "a hardware adapter counts as a GPU");
      } finally {
        gpu.destroy();
      }
    }
  },
});
