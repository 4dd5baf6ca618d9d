/**
 * Decoding and prompt speed of a model at a storage dtype, against the machine's read
 * bandwidth measured in the same run.
 *
 *   deno run -A bench/decode.ts --model /tmp/models/7-0.4b.safetensors --dtype q8 --threads 2
 *
 * Reports: load seconds, ms/token (median of 32 after warm-up), prompt tokens/s for 128 and 512
 * tokens (`--prompts 128,512`; `--prompts 0` skips them, as for the 13.3B shape), peak RSS (VmHWM) after the load and after the tokens, beside issue 26's bound (1.05 ×
 * the weights in memory + 512 MiB); the bytes one decoded token must read, counted from the loaded layout (every
 * matrix once at its stored size, the head included, one embedding row, every weight vector, and
 * the recurrent state read and written once: all of it crosses the memory bus every token),
 * and the same at the formats' minimum (q8 34 bytes per 32 values, q4 18: what rwkv.cpp reads;
 * our q8 and q4 kernels read an f32 scale per block: q8 36, q4 20); the read
 * ceiling, the same number of Workers started together streaming 512 MiB with the plain wasm
 * loop (16-byte loads and integer adds, nothing else), one pass after every 4 decoded tokens so
 * that it is read in the same seconds as the decoding (this machine kind's bandwidth drifts by
 * ±20 % within a minute): the median of those passes is the ceiling (the best one is reported
 * too), and the effective GB/s its share. The old yardstick, the same Workers streaming 512 MiB through the f32 decode
 * kernel, is kept as `kernelProbeGBs` (it reads slower than the plain loop, so shares of it read
 * high). `--profile` adds where a token's time goes (products by storage, recurrences, per-token
 * steps, barrier waits, the rest), timed over as many tokens again after the measured ones:
 * profiling's timers (two `performance.now()` calls around every step and chunk) cost a few
 * percent of a token, so the measured tokens run with it paused.
 * `--huge-pages` loads the weights into huge pages (lib/model/huge_pages.ts; `hugePagesMiB` says
 * how much the kernel gave); every run also reads a second ceiling, the same loop over huge
 * pages (`ceilingHugeGBs`, `percentOfHugeCeiling`), passes of the two alternating.
 * Runs the wasm backend (lib/backend/wasm), or with `--backend webgpu` the WebGPU backend
 * (then no CPU ceiling). `--json FILE` also appends the run's row
 * (`{ model, dtype, msPerToken, promptTokPerSec, bandwidthGBs, weightBytesPerToken, peakRssMiB }`)
 * to the JSON array in FILE (created if absent), which `bench/chart.ts --decode FILE` draws.
 * @module
 */

import { parseArgs } from "node:util";
import {
  compileKernels,
  createWasmModel,
  PROFILE,
  PROFILE_STRIDE,
} from "../lib/backend/wasm/mod.ts";
import { createWebGpuModel } from "../lib/backend/webgpu/mod.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { planWeights } from "../lib/model/weights.ts";
import { KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";
import { bytesPerToken, costBreakdown, ReadProbe } from "./_roofline.ts";
import { anonHugeMiB, peakRssMiB } from "./_rss.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "bf16" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "32" },
    chunk: { type: "string", default: "64" },
    json: { type: "string" }, // FILE: append this run's row to the JSON array in FILE
    backend: { type: "string", default: "wasm" },
    profile: { type: "boolean", default: false },
    prompts: { type: "string", default: "128,512" }, // prompt lengths timed ("0": none)
    "huge-pages": { type: "boolean", default: false }, // the weights in huge pages (Linux)
  },
});
if (!values.model) throw new Error("--model is required");
const threads = Number(values.threads);

/**
 * The old yardstick: read bandwidth of `threads` Workers streaming 512 MiB through the f32
 * decode kernel (GB/s): each pass starts all the workers together and lasts until the slowest
 * ends; the best of 8 passes.
 */
async function bandwidth(): Promise<number> {
  const bytes = 512 * 2 ** 20, cols = 4096, rows = bytes / 4 / cols;
  const memory = new WebAssembly.Memory({
    initial: bytes / 65536 + 64,
    maximum: bytes / 65536 + 64,
    shared: true,
  });
  new Uint8Array(memory.buffer).fill(0x3c); // ≈ 0.0115 as f32: no denormals
  const module = await compileKernels();
  const sync = new SharedArrayBuffer(4);
  const w = 65536, x = w + bytes, y = x + cols * 4;
  const per = rows / threads, reps = 8;
  const times = await Promise.all(
    Array.from({ length: threads }, (_, i) =>
      new Promise<number[]>((resolve) => {
        const wk = new Worker(new URL("./_bandwidth_worker.ts", import.meta.url), {
          type: "module",
        });
        wk.onmessage = (e) => resolve(e.data);
        wk.postMessage({
          memory,
          module,
          sync,
          threads,
          w,
          x,
          y,
          rows,
          cols,
          r0: i * per,
          r1: (i + 1) * per,
          reps,
        });
      })),
  );
  const passes = Array.from({ length: reps }, (_, r) => Math.max(...times.map((t) => t[r])));
  return bytes / (Math.min(...passes) / 1000) / 1e9;
}

const t0 = performance.now();
const ck = await openCheckpoint(values.model);
const gpu = values.backend === "webgpu";
if (!gpu && values.backend !== "wasm") throw new Error("--backend is wasm or webgpu");
const profile = values.profile && !gpu
  ? new Float64Array(new SharedArrayBuffer(threads * PROFILE_STRIDE * 8))
  : undefined;
const model = await (gpu ? createWebGpuModel : createWasmModel)(ck, {
  dtype: values.dtype as "bf16",
  threads,
  chunk: Number(values.chunk),
  profile,
  hugePages: values["huge-pages"],
});
const loadSeconds = (performance.now() - t0) / 1000;
const loadPeakRss = peakRssMiB(); // the load's own peak, before any token's buffers
const hugeMiB = anonHugeMiB(); // memory the kernel backs with huge pages (the weights' memories)
const info = model.info;
const V = info.vocab;
const state = model.createState();
let tok = 1;
// Warm-up: V8 starts WebAssembly on its baseline compiler and swaps in optimized code once a
// function is hot; measure after that has happened.
await model.forward(Array.from({ length: 64 }, (_, i) => i), model.createState());
for (let i = 0; i < 16; i++) await model.forward([tok++ % V], state);
async function promptRate(n: number): Promise<number> {
  const ids = Array.from({ length: n }, (_, i) => (i * 104729) % V);
  await model.forward(ids.slice(0, 16), model.createState()); // warm the prompt path
  const t = performance.now();
  await model.forward(ids, model.createState());
  return n / ((performance.now() - t) / 1000);
}
const promptLengths = values.prompts.split(",").map(Number).filter((n) => n > 0);
const prompts: Record<string, number> = {};
for (const n of promptLengths) prompts[`prompt${n}`] = +(await promptRate(n)).toFixed(1);
const longest = promptLengths.length ? prompts[`prompt${Math.max(...promptLengths)}`] : NaN;
// the plain-loop ceiling, a pass after every 4 tokens: the machine's bandwidth drifts, so it is
// read in the same seconds as the decoding it is compared with (peak RSS first: the probe's own
// memory is not the model's)
const peakRss = peakRssMiB();
const probe = gpu ? undefined : await ReadProbe.start(threads);
// the same loop over huge pages, as the engine's weights have them where the kernel gives them
// (lib/model/huge_pages.ts): a second ceiling, the strictest like-for-like one
const hugeProbe = gpu ? undefined : await ReadProbe.start(threads, 512, true);
const ceilings: number[] = [], hugeCeilings: number[] = [];
// the measured tokens run with profiling paused (its timers cost a few percent of a token);
// with --profile, as many tokens again are then timed for the breakdown
if (profile) { for (let w = 0; w < threads; w++) profile[w * PROFILE_STRIDE + PROFILE.paused] = 1; }
const times: number[] = [];
for (let i = 0; i < Number(values.tokens); i++) {
  const t = performance.now();
  await model.forward([(tok++ * 7919) % V], state);
  times.push(performance.now() - t);
  if (probe && hugeProbe && i % 4 === 3) {
    if (i % 8 === 3) ceilings.push(await probe.pass()), hugeCeilings.push(await hugeProbe.pass());
    else hugeCeilings.push(await hugeProbe.pass()), ceilings.push(await probe.pass());
  }
}
probe?.close();
hugeProbe?.close();
const profiled: number[] = [];
if (profile) {
  profile.fill(0); // which also resumes it
  for (let i = 0; i < Number(values.tokens); i++) {
    const t = performance.now();
    await model.forward([(tok++ * 7919) % V], state);
    profiled.push(performance.now() - t);
  }
}
const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
const breakdown = profile && costBreakdown(profile, threads, profiled.length, mean(profiled));
times.sort((a, b) => a - b);
const msPerToken = times[Math.floor(times.length / 2)];

const stateBytes = state.data.byteLength;
// the bytes one step reads, from the plan of the load (no second load: a model near the
// machine's memory could not be loaded twice)
const { plans } = planWeights(ck, model.spec, info.dtype, gpu ? undefined : KERNEL_LAYOUT);
await model.dispose();
ck.close();
const bytes = bytesPerToken(plans, stateBytes);
const bytesPerTokenRead = bytes.weights + bytes.state;
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const ceiling = gpu ? NaN : median(ceilings), ceilingBest = gpu ? NaN : Math.max(...ceilings);
const ceilingHuge = gpu || !hugeProbe?.hugePages ? NaN : median(hugeCeilings);
const bw = gpu ? NaN : await bandwidth();
const gbs = bytesPerTokenRead / (msPerToken / 1000) / 1e9;
const gbsMinimal = (bytes.minimal + bytes.state) / (msPerToken / 1000) / 1e9;
const result = {
  model: values.model.split("/").pop(),
  version: info.version,
  shape: `${info.layers}×${info.embd}`,
  dtype: info.dtype,
  engine: info.engine,
  threads,
  loadSeconds: +loadSeconds.toFixed(2),
  msPerToken: +msPerToken.toFixed(2),
  ...prompts,
  promptSpeedup: +(longest / (1000 / msPerToken)).toFixed(2),
  loadPeakRssMiB: Math.round(loadPeakRss),
  peakRssMiB: Math.round(peakRss),
  // issue 26's bound: 1.05 × the weights in memory + 512 MiB
  rssLimitMiB: Math.round((1.05 * info.weightBytes) / 2 ** 20 + 512),
  weightMiB: Math.round(info.weightBytes / 2 ** 20),
  bytesPerTokenMiB: +(bytesPerTokenRead / 2 ** 20).toFixed(1),
  stateMiBPerToken: +(bytes.state / 2 ** 20).toFixed(1),
  minimalBytesPerTokenMiB: +((bytes.minimal + bytes.state) / 2 ** 20).toFixed(1),
  effectiveGBs: +gbs.toFixed(1),
  ceilingGBs: +ceiling.toFixed(1),
  ceilingBestGBs: +ceilingBest.toFixed(1),
  percentOfCeiling: Math.round((gbs / ceiling) * 100),
  percentOfBestCeiling: Math.round((gbs / ceilingBest) * 100),
  percentOfCeilingMinimalBytes: Math.round((gbsMinimal / ceiling) * 100),
  hugePagesMiB: hugeMiB,
  ceilingHugeGBs: +ceilingHuge.toFixed(1),
  percentOfHugeCeiling: Math.round((gbs / ceilingHuge) * 100),
  kernelProbeGBs: +bw.toFixed(1),
  percentOfKernelProbe: Math.round((gbs / bw) * 100),
};
for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(28)} ${v}`);
if (breakdown) {
  const wall = mean(profiled);
  console.log(
    `where a token's time goes (${profiled.length} more tokens, profiling on: ${
      wall.toFixed(2)
    } ms a token on average; member 0; ms per token):`,
  );
  for (const [name, ms] of breakdown.rows) {
    console.log(
      `  ${name.padEnd(26)} ${ms.toFixed(3).padStart(8)}  ${(100 * ms / wall).toFixed(1)} %`,
    );
  }
  console.log(`  slowest member's products ${breakdown.slowest.toFixed(3)}`);
}
if (values.json) {
  const rows = await Deno.readTextFile(values.json).then(JSON.parse, () => []);
  rows.push({
    model: result.model?.replace(/\.(safetensors|pth|bin)$/, ""),
    dtype: info.dtype,
    msPerToken: result.msPerToken,
    promptTokPerSec: prompts.prompt128 ?? null,
    bandwidthGBs: result.ceilingGBs,
    weightBytesPerToken: bytesPerTokenRead,
    peakRssMiB: result.peakRssMiB,
  });
  const tmp = `${values.json}.tmp`; // written whole, then renamed into place
  await Deno.writeTextFile(tmp, JSON.stringify(rows, null, 1) + "\n");
  await Deno.rename(tmp, values.json);
}
