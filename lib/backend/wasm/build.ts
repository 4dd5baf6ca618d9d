/**
 * Builds the kernels from `kernels.wat` with wabt (from npm), after expanding the helpers marked
 * `;; @inline` (see `_inline.ts`): `kernels.wasm` over one memory, and `kernels_split.wasm`, the
 * same functions reading the weights from a second memory (see `_memories.ts`). Both are
 * committed; the kernels test checks that this build reproduces them byte for byte.
 *
 *   deno task build:kernels          # writes lib/backend/wasm/kernels.wasm and kernels_split.wasm
 *   deno run -A lib/backend/wasm/build.ts --check
 *
 * @module
 */

import wabtInit from "npm:wabt@1.0.39";
import { emitWat, inlineTree, parseWat } from "./_inline.ts";
import { weightMemoryTree } from "./_memories.ts";
import type { KernelBuild } from "./kernels.ts";

/** Each build's file, beside this module. */
export const KERNEL_FILES: Record<KernelBuild, string> = {
  single: "kernels.wasm",
  split: "kernels_split.wasm",
};

/** Assembles the kernels' WAT source into wasm bytes (deterministic: no names, no dates). */
export async function buildKernels(build: KernelBuild = "single"): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const src = await Deno.readTextFile(new URL("./kernels.wat", import.meta.url));
  let tree = inlineTree(parseWat(src));
  if (build === "split") tree = weightMemoryTree(tree);
  const features = {
    simd: true,
    threads: true,
    relaxed_simd: true,
    multi_value: true,
    multi_memory: build === "split",
  };
  const mod = wabt.parseWat("kernels.wat", tree.map(emitWat).join("\n") + "\n", features);
  try {
    mod.resolveNames();
    return mod.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    mod.destroy();
  }
}

if (import.meta.main) {
  let stale = false;
  for (const build of ["single", "split"] as const) {
    const out = new URL(`./${KERNEL_FILES[build]}`, import.meta.url);
    const bytes = await buildKernels(build);
    if (Deno.args.includes("--check")) {
      const committed = await Deno.readFile(out).catch(() => new Uint8Array());
      const same = committed.length === bytes.length && committed.every((b, i) => b === bytes[i]);
      console.log(`${KERNEL_FILES[build]} ${same ? "is up to date" : "differs from its source"}`);
      stale ||= !same;
    } else {
      await Deno.writeFile(out, bytes);
      console.log(`wrote ${out.pathname} (${bytes.length} bytes)`);
    }
  }
  if (stale) Deno.exit(1);
}
