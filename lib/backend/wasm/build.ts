/**
 * Builds `kernels.wasm` from `kernels.wat` with wabt (from npm), after expanding the helpers
 * marked `;; @inline` (see `_inline.ts`). The output is committed; the
 * kernels test checks that this build reproduces it byte for byte.
 *
 *   deno task build:kernels          # writes lib/backend/wasm/kernels.wasm
 *   deno run -A lib/backend/wasm/build.ts --check
 *
 * @module
 */

import wabtInit from "npm:wabt@1.0.39";
import { inlineWat } from "./_inline.ts";

/** Assembles the kernels' WAT source into wasm bytes (deterministic: no names, no dates). */
export async function buildKernels(): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const src = await Deno.readTextFile(new URL("./kernels.wat", import.meta.url));
  const features = { simd: true, threads: true, relaxed_simd: true, multi_value: true };
  const mod = wabt.parseWat("kernels.wat", inlineWat(src), features);
  try {
    mod.resolveNames();
    return mod.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    mod.destroy();
  }
}

if (import.meta.main) {
  const out = new URL("./kernels.wasm", import.meta.url);
  const bytes = await buildKernels();
  if (Deno.args.includes("--check")) {
    const committed = await Deno.readFile(out);
    const same = committed.length === bytes.length && committed.every((b, i) => b === bytes[i]);
    console.log(same ? "kernels.wasm is up to date" : "kernels.wasm differs from its source");
    Deno.exit(same ? 0 : 1);
  }
  await Deno.writeFile(out, bytes);
  console.log(`wrote ${out.pathname} (${bytes.length} bytes)`);
}
