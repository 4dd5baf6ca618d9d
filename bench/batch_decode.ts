/**
 * Batched decoding at the engine: one `forwardBatch` step over B sequences (one token each,
 * each with its own state) for B = 1, 2, 4, 8, 16, against B = 1 in the same run:
 *
 *   deno run -A bench/batch_decode.ts --model /tmp/models/7-0.4b.safetensors --dtype q8
 *
 * Prints per B the median step time, aggregate tokens/s and its ratio to B = 1 (the ceiling the
 * server's continuous batching can reach on this model; sampling and HTTP come on top).
 * @module
 */

import { parseArgs } from "node:util";
import { createWasmModel } from "../lib/backend/wasm/mod.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import type { WeightDType } from "../lib/model/weights.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "q8" },
    threads: { type: "string", default: "2" },
    batches: { type: "string", default: "1,2,4,8,16" },
    steps: { type: "string", default: "16" },
  },
});
if (!values.model) {
  console.error("--model is required");
  Deno.exit(2);
}
const ck = await openCheckpoint(values.model);
await using model = await createWasmModel(ck, {
  dtype: values.dtype as WeightDType,
  threads: Number(values.threads),
});
ck.close();
const steps = Number(values.steps), V = model.spec.vocab;
let base = 0;
console.log(`${values.model} ${values.dtype}, ${values.threads} workers`);
console.log("B  | ms/step | tok/s  | × B=1");
for (const B of values.batches.split(",").map(Number)) {
  const states = Array.from({ length: B }, () => model.createState());
  const items = (s: number) =>
    states.map((state, i) => ({ tokens: [(s * 31 + i * 7919) % V], state }));
  for (let s = 0; s < 3; s++) await model.forwardBatch(items(s)); // warm-up
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    await model.forwardBatch(items(s));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[times.length >> 1], rate = (B * 1000) / ms;
  if (B === 1) base = rate;
  console.log(
    `${String(B).padEnd(2)} | ${ms.toFixed(2).padStart(7)} | ${rate.toFixed(1).padStart(6)} | ` +
      `${base ? (rate / base).toFixed(2) : "-"}`,
  );
}
