/**
 * WebGPU in the test suite: whether tests can use it, and {@link webgpuTest}, which runs a test
 * that touches the GPU in a child process.
 *
 * Why a child: Deno 2.9.6's `deno test` drops each test file's runtime before the process exits,
 * and once a dropped runtime had created a WebGPU instance on Mesa (GL through EGL, as here; the
 * Vulkan lavapipe driver alike), the process now and then aborts at exit with glibc heap
 * corruption ("corrupted size vs. prev_size in fastbins", "double free or corruption"), after
 * every test passed. Measured on this project's CI machine: twelve test files that only call
 * `navigator.gpu.requestAdapter()` abort in 8 to 10 runs of 20 (one such file: 2 of 30); the same
 * files with the GL backend unavailable, 0 of 20; a `deno run` script doing 36 adapter, device and
 * submit cycles, 0 of 20, and one requesting an adapter, 0 of 60. So every test that touches the
 * GPU runs under `deno run` in a child, one per test file, and the test runner's own runtimes never
 * touch `navigator.gpu`: `deno task test` sets `RWKV_BACKEND=wasm`, so `auto` never probes for a
 * GPU in them (the tests of `auto` itself run in the child, where the variable is removed).
 *
 * Without an adapter, WebGPU tests are ignored with a visible notice, and fail when
 * `RWKV_REQUIRE_WEBGPU=1` (as CI sets after installing Mesa).
 * @module
 */

/** True when CI demands a WebGPU adapter. */
export const REQUIRE_WEBGPU = Deno.env.get("RWKV_REQUIRE_WEBGPU") === "1";

/** True in the child process that runs one test file's WebGPU tests. */
export const IN_WEBGPU_CHILD = Deno.env.get("RWKV_WEBGPU_CHILD") === "1";

const CHILD = new URL("./_webgpu_child.ts", import.meta.url).pathname;

async function adapterHere(): Promise<boolean> {
  return Boolean(await navigator.gpu?.requestAdapter().catch(() => null));
}

/** Asks a short-lived `deno eval` (never this runtime) whether an adapter exists. */
async function adapterInChild(): Promise<boolean> {
  const probe = "Deno.exit((await navigator.gpu?.requestAdapter().catch(() => null)) ? 0 : 3)";
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", probe],
    stdout: "null",
    stderr: "null",
  }).output();
  return code === 0;
}

async function probe(): Promise<boolean> {
  if (await (IN_WEBGPU_CHILD ? adapterHere() : adapterInChild())) return true;
  if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter and RWKV_REQUIRE_WEBGPU=1");
  console.error("NOTICE: no WebGPU adapter; WebGPU tests are skipped");
  return false;
}

/** True when a WebGPU adapter is available (checked once per test file, at module load). */
export const HAVE_WEBGPU: boolean = await probe();

/** A test that touches the GPU: as `Deno.test`'s definition, without a test context. */
export interface WebGpuTestDefinition {
  /** The test's name (unique within its file). */
  name: string;
  /** Skip it (it is skipped anyway without an adapter). */
  ignore?: boolean;
  /** The test: throws to fail. */
  fn: () => void | Promise<void>;
}

/** One test's outcome in the child, as it writes them. */
export interface WebGpuTestResult {
  name: string;
  ok: boolean;
  error?: string;
}

const registered = new Map<string, WebGpuTestDefinition[]>();

/** The tests a file registered (in the child): its runner reads them after importing it. */
export function registeredWebGpuTests(file: string): WebGpuTestDefinition[] {
  return registered.get(file) ?? [];
}

const runs = new Map<string, Promise<{ code: number; results: Map<string, WebGpuTestResult> }>>();

/** Runs `file`'s WebGPU tests in one `deno run` child (once) and reads its results. */
function runChild(file: string) {
  let run = runs.get(file);
  if (!run) {
    run = (async () => {
      const out = await Deno.makeTempFile({ prefix: "rwkv-webgpu-", suffix: ".json" });
      try {
        const env = Deno.env.toObject();
        delete env.RWKV_BACKEND;
        env.RWKV_WEBGPU_CHILD = "1";
        const { code } = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CHILD, file, out],
          clearEnv: true,
          env,
          stdout: "inherit",
          stderr: "inherit",
        }).output();
        const text = await Deno.readTextFile(out);
        const list: WebGpuTestResult[] = text ? JSON.parse(text) : [];
        return { code, results: new Map(list.map((r) => [r.name, r])) };
      } finally {
        await Deno.remove(out).catch(() => {});
      }
    })();
    runs.set(file, run);
  }
  return run;
}

/**
 * Registers a test that touches the GPU. Under `deno test` it is a `Deno.test` whose outcome
 * comes from a child process running every such test of `file` under `deno run`; in that child
 * it is collected for the runner (tests/_webgpu_child.ts). A child that exits with a nonzero code
 * fails every test of its file, a test it did not report fails, and a test that threw fails with
 * the child's error text.
 * @example
 * ```ts
 * webgpuTest(import.meta.url, { name: "webgpu: an adapter", fn: async () => {} });
 * ```
 */
export function webgpuTest(file: string, def: WebGpuTestDefinition): void {
  if (IN_WEBGPU_CHILD) {
    const list = registered.get(file) ?? [];
    list.push(def);
    registered.set(file, list);
    return;
  }
  Deno.test({
    name: def.name,
    ignore: def.ignore || !HAVE_WEBGPU,
    fn: async () => {
      const { code, results } = await runChild(file);
      const r = results.get(def.name);
      if (code !== 0) throw new Error(`the WebGPU child for ${file} exited with code ${code}`);
      if (!r) throw new Error(`the WebGPU child for ${file} did not report "${def.name}"`);
      if (!r.ok) throw new Error(`in the WebGPU child: ${r.error}`);
    },
  });
}
