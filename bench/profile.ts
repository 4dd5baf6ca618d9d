/**
 * Where a decoded token's time goes, against the machine's read ceiling:
 *
 *   deno run -A bench/profile.ts --model /tmp/models/7-0.4b.safetensors --dtype q8 --threads 2
 *
 * Decodes `--tokens` tokens (after a warm-up) with the wasm backend's profiling on and prints,
 * per token: the wall time, each kind of step (products by storage, recurrences, per-token steps,
 * embedding, barrier waits; member 0's view, and the slowest member's products), the rest of the
 * pass and the time outside passes (the main thread's hand-over); then the bytes a token must read
 * (weights as the kernels read them, one embedding row, the state in and out), the read ceiling
 * of the same number of Workers with a plain streaming loop, and the share of it reached.
 * @module
 */

import { parseArgs } from "node:util";
import { createWasmModel, PROFILE_STRIDE } from "../lib/backend/wasm/mod.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { planWeights, type WeightDType } from "../lib/model/weights.ts";
import { KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";
import { bytesPerToken, costBreakdown, readCeiling } from "./_roofline.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "q8" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "32" },
    batch: { type: "string", default: "1" },
  },
});
if (!values.model) {
  console.error("--model is required");
  Deno.exit(2);
}
const threads = Number(values.threads), N = Number(values.tokens), B = Number(values.batch);
const dtype = values.dtype as WeightDType;

const profile = new Float64Array(new SharedArrayBuffer(threads * PROFILE_STRIDE * 8));
const ck = await openCheckpoint(values.model);
const model = await createWasmModel(ck, { dtype, threads, profile });
const spec = model.spec;
// what a token reads, from the load's plan (no second load of the weights beside the model)
const { plans } = planWeights(ck, spec, model.info.dtype, KERNEL_LAYOUT);
ck.close();
// B sequences decoded together (one forwardBatch step each), each with its own state
const states = Array.from({ length: B }, () => model.createState());
const step = (i: number) =>
  model.forwardBatch(
    states.map((state, b) => ({ tokens: [(i * 31 + b * 7919) % spec.vocab], state })),
  );
for (let i = 0; i < 4; i++) await step(i); // warm-up
profile.fill(0);
const t0 = performance.now();
for (let i = 0; i < N; i++) await step(i);
// per step (B tokens)
const wall = (performance.now() - t0) / N;
const state = states[0];
await model.dispose();

const { rows, products, slowest } = costBreakdown(profile, threads, N, wall);
const { weights: wBytes, state: sBytes } = bytesPerToken(plans, state.data.byteLength);
const ceiling = await readCeiling(threads);
const gbs = (wBytes + B * sBytes) / (wall / 1000) / 1e9;
console.log(`${values.model} ${dtype}, ${threads} workers, ${N} steps of ${B} sequence(s)`);
console.log(`ms/step ${wall.toFixed(2)} (${(wall / B).toFixed(2)} ms/token)`);
for (const [name, ms] of rows) {
  console.log(
    `  ${name.padEnd(26)} ${ms.toFixed(3).padStart(8)} ms  ${(100 * ms / wall).toFixed(1)} %`,
  );
}
console.log(`  slowest member's products ${slowest.toFixed(3)} ms`);
console.log(
  `bytes/token: weights ${(wBytes / 2 ** 20).toFixed(1)} MiB + state ${
    (sBytes / 2 ** 20).toFixed(1)
  } MiB`,
);
console.log(
  `effective ${gbs.toFixed(1)} GB/s; plain-loop read ceiling ${ceiling.toFixed(1)} GB/s ` +
    `(${threads} workers): ${(100 * gbs / ceiling).toFixed(0)} %; products alone ` +
    `${(wBytes / (products / 1000) / 1e9).toFixed(1)} GB/s`,
);
