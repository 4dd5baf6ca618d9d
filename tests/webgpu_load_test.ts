/**
 * `loadModel(…, { device })`: the WebGPU backend chosen by name, `auto` choosing a hardware GPU
 * only, bad choices refused, and the backend imported from a URL (its WGSL files fetched from
 * that URL).
 * @module
 */

import { loadModel } from "../lib/load.ts";
import { hasHardwareGpu } from "../lib/backend/webgpu/mod.ts";
import { UsageError } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, maxAbsDiff } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { HAVE_WEBGPU, webgpuTest } from "./_webgpu.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const ROOT = new URL("../", import.meta.url).pathname;

webgpuTest(import.meta.url, {
  name: "webgpu load: backend webgpu runs the model on the GPU; auto never picks a software one",
  ignore: !MODEL,
  fn: async () => {
    await using gpu = await loadModel(MODEL!, { backend: "webgpu" });
    assert(gpu.info.engine.startsWith("webgpu"), gpu.info.engine);
    await using cpu = await loadModel(MODEL!, { backend: "reference" });
    const tokens = [34, 105, 110];
    const d = maxAbsDiff(
      await gpu.forward(tokens, gpu.createState()),
      await cpu.forward(tokens, cpu.createState()),
    );
    assert(d <= 1e-5, `webgpu vs reference: ${d}`);
    await using auto = await loadModel(MODEL!, { threads: 1 });
    assertEquals(auto.info.engine.startsWith("webgpu"), await hasHardwareGpu(), auto.info.engine);
  },
});

Deno.test({
  name: "webgpu load: a CPU engine on the GPU is a UsageError",
  ignore: !MODEL,
  fn: async () => {
    await assertRejects(
      () => loadModel(MODEL!, { device: "webgpu", engine: "reference" }),
      UsageError,
      "runs on the CPU",
    );
  },
});

Deno.test({
  name: "webgpu load: mod.ts imported over HTTP runs a fixture on device webgpu",
  ignore: !HAVE_WEBGPU || !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const served = new Set<string>();
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path.includes("..") || !/\.(ts|wgsl|wasm|json)$/.test(path)) {
        return new Response("no", { status: 404 });
      }
      served.add(path);
      return Deno.readFile(ROOT + path.slice(1)).then(
        (body) => new Response(body, { headers: { "content-type": "application/typescript" } }),
        () => new Response("not found", { status: 404 }),
      );
    });
    const { dir, cleanup } = await tempDir();
    try {
      const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/mod.ts`;
      await Deno.writeTextFile(
        `${dir}/use.ts`,
        `import { loadModel } from "${url}";
await using model = await loadModel(${JSON.stringify(MODEL)}, { backend: "webgpu" });
const logits = await model.forward([34, 105, 110], model.createState());
console.log(JSON.stringify({ engine: model.info.engine, logits: Array.from(logits) }));
`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `--reload=${new URL(url).origin}`, "--no-lock", `${dir}/use.ts`],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
      assert(r.engine.startsWith("webgpu"), r.engine);
      assert(served.has("/lib/backend/webgpu/ops.wgsl"), "the shaders came over HTTP");
      await using local = await loadModel(MODEL!, { backend: "reference" });
      const want = await local.forward([34, 105, 110], local.createState());
      assert(maxAbsDiff(r.logits, want) <= 1e-5, "the same logits as the local reference");
    } finally {
      await server.shutdown();
      await cleanup();
    }
  },
});
