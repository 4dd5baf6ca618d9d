/**
 * Loading a q8 file vs loading its bf16 source and quantizing on load, in one run.
 *
 *   deno run -A bench/make_model.ts --preset 4-430m --out /tmp/models/4-430m.safetensors
 *   deno run -A cli/convert.ts /tmp/models/4-430m.safetensors /tmp/q/430m-q8.safetensors --quant q8
 *   deno run -A bench/quant_load.ts /tmp/models/4-430m.safetensors /tmp/q/430m-q8.safetensors
 *
 * @module
 */

import { loadModel } from "../lib/load.ts";

const [source, quantized] = Deno.args;
if (!source || !quantized) throw new Error("usage: quant_load.ts SOURCE(bf16) QUANTIZED(q8)");

async function time(path: string, dtype: "q8" | "auto"): Promise<number> {
  const t = performance.now();
  const m = await loadModel(path, { dtype, threads: 2 });
  const s = (performance.now() - t) / 1000;
  await m.dispose();
  return s;
}
const a: number[] = [], b: number[] = [];
for (let i = 0; i < 3; i++) {
  a.push(await time(source, "q8"));
  b.push(await time(quantized, "auto"));
}
const best = (x: number[]) => Math.min(...x);
console.log(`bf16 source, quantized on load: ${best(a).toFixed(2)} s`);
console.log(`q8 file, copied:                 ${best(b).toFixed(2)} s`);
console.log(`q8 file loads ${(best(a) / best(b)).toFixed(1)}× faster`);
