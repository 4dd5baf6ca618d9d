/**
 * The child process of {@link webgpuTest}: `deno run -A tests/_webgpu_child.ts FILE_URL OUT`
 * (with `RWKV_WEBGPU_CHILD=1`) imports a test file, runs the WebGPU tests it registered one after
 * another (its `Deno.test` calls do nothing under `deno run`), writes their outcomes to OUT as
 * JSON, and exits. Why it exists: tests/_webgpu.ts.
 * @module
 */

import { IN_WEBGPU_CHILD, registeredWebGpuTests, type WebGpuTestResult } from "./_webgpu.ts";

const [file, out] = Deno.args;
if (!IN_WEBGPU_CHILD || !file || !out) {
  console.error("usage: RWKV_WEBGPU_CHILD=1 deno run -A tests/_webgpu_child.ts FILE_URL OUT");
  Deno.exit(2);
}
await import(file);
const results: WebGpuTestResult[] = [];
for (const t of registeredWebGpuTests(file)) {
  if (t.ignore) continue;
  const t0 = performance.now();
  try {
    await t.fn();
    results.push({ name: t.name, ok: true });
    console.log(`  (webgpu child) ${t.name} ... ok (${Math.round(performance.now() - t0)} ms)`);
  } catch (e) {
    results.push({ name: t.name, ok: false, error: e instanceof Error ? e.stack : String(e) });
    console.log(`  (webgpu child) ${t.name} ... FAILED`);
  }
}
await Deno.writeTextFile(out, JSON.stringify(results));
Deno.exit(0);
