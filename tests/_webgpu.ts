/**
 * Whether WebGPU tests can run here: they need an adapter (on a machine without a GPU, Mesa's
 * software one). Without one they are ignored with a visible notice, and fail when
 * `RWKV_REQUIRE_WEBGPU=1` (as CI sets after installing Mesa).
 * @module
 */

/** True when CI demands a WebGPU adapter. */
export const REQUIRE_WEBGPU = Deno.env.get("RWKV_REQUIRE_WEBGPU") === "1";

async function probe(): Promise<boolean> {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  if (adapter) return true;
  if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter and RWKV_REQUIRE_WEBGPU=1");
  console.error("NOTICE: no WebGPU adapter; WebGPU tests are skipped");
  return false;
}

/** True when a WebGPU adapter is available (checked once, at module load). */
export const HAVE_WEBGPU: boolean = await probe();
