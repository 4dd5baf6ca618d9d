/**
 * `loadModel` checks every option before it loads anything and names the bad one.
 */
import { assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { UsageError } from "../lib/errors.ts";
import {
  chooseBackend,
  loadModel,
  type LoadModelOptions,
  validateLoadOptions,
} from "../lib/load.ts";

Deno.test("loadModel options: each bad value is a UsageError naming the option", () => {
  const bad: [LoadModelOptions, RegExp][] = [
    [{ dtype: "q5" as "q8" }, /invalid dtype "q5": expected auto, f32, bf16, f16, q8 or q4/],
    [{ engine: "gpu" as "fast" }, /invalid engine "gpu"/],
    [{ device: "tpu" as "cpu" }, /invalid device "tpu": expected auto, cpu or webgpu/],
    [
      { backend: "gpu" as "wasm" },
      /invalid backend "gpu": expected auto, reference, wasm or webgpu/,
    ],
    [{ device: "webgpu", engine: "fast" }, /engine fast runs on the CPU, not on device webgpu/],
    [{ backend: "wasm", device: "webgpu" }, /backend wasm disagrees with device webgpu/],
    [{ backend: "webgpu", engine: "reference" }, /backend webgpu disagrees with engine reference/],
    [{ backend: "reference", engine: "fast" }, /backend reference disagrees with engine fast/],
    [{ threads: 0 }, /invalid threads 0: expected a whole number from 1 to 64/],
    [{ threads: 1.5 }, /invalid threads 1.5/],
    [{ threads: "2" as unknown as number }, /invalid threads "2"/],
    [{ chunk: 5000 }, /invalid chunk 5000/],
    [{ onProgress: 3 as unknown as () => void }, /invalid onProgress/],
  ];
  for (const [options, re] of bad) assertThrows(() => validateLoadOptions(options), UsageError, re);
  for (
    const good of [{}, { dtype: "q4", threads: 2, device: "auto", chunk: 64 }, { device: "cpu" }]
  ) {
    validateLoadOptions(good as LoadModelOptions);
  }
});

Deno.test("loadModel options: backend is the one choice; engine and device still work as aliases", () => {
  const cases: [LoadModelOptions, string][] = [
    [{}, "auto"],
    [{ backend: "auto" }, "auto"],
    [{ backend: "wasm" }, "wasm"],
    [{ backend: "reference" }, "reference"],
    [{ backend: "webgpu" }, "webgpu"],
    [{ engine: "fast" }, "wasm"],
    [{ engine: "wasm" }, "wasm"],
    [{ engine: "reference" }, "reference"],
    [{ device: "cpu" }, "wasm"],
    [{ device: "cpu", engine: "reference" }, "reference"],
    [{ device: "webgpu" }, "webgpu"],
    [{ backend: "wasm", engine: "fast", device: "cpu" }, "wasm"],
    [{ backend: "webgpu", device: "webgpu" }, "webgpu"],
  ];
  for (const [options, want] of cases) {
    assertEquals(chooseBackend(options), want, JSON.stringify(options));
  }
});

Deno.test("loadModel: a missing file fails before loading, naming it", async () => {
  await assertRejects(
    () => loadModel("/nonexistent-rwkv/model.pth"),
    UsageError,
    /model file \/nonexistent-rwkv\/model\.pth does not exist/,
  );
});

// absent, the fixture is named in a NOTICE and the test shows as ignored (CI: an error)
const st7 = fixture("tiny-rwkv-7v0.safetensors");

Deno.test({
  name: "loadModel: a bad option on a real model fails before loading; good ones load it",
  ignore: !st7,
  async fn() {
    await assertRejects(() => loadModel(st7!, { dtype: "q5" as "q8" }), UsageError, /dtype/);
    const model = await loadModel(st7!, { threads: 1, backend: "reference" });
    assertEquals(model.info.vocab, 256);
    await model.dispose();
  },
});

Deno.test("loadModel: RWKV_BACKEND is what auto picks; a bad value is a UsageError naming it", async () => {
  // in a child process: the variable is process-wide, and other test files run beside this one
  const script = `import { autoBackend } from "${new URL(
    "../lib/backend/mod.ts",
    import.meta.url,
  )}";
try { console.log(await autoBackend()); } catch (e) { console.log(e.name + ": " + e.message); }`;
  const run = async (value: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { RWKV_BACKEND: value },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assertEquals(out.code, 0);
    return new TextDecoder().decode(out.stdout).trim();
  };
  assertEquals(await run("reference"), "reference");
  assertEquals(await run("wasm"), "wasm");
  assertEquals(
    await run("tpu"),
    'UsageError: invalid RWKV_BACKEND "tpu": expected auto, reference, wasm or webgpu',
  );
});
