/**
 * Decoding and prompt speed of a model at a storage dtype, against the machine's read
 * bandwidth measured in the same run.
 *
 *   deno run -A bench/decode.ts --model /tmp/models/7-0.4b.safetensors --dtype q8 --threads 2
 *
 * Reports: load seconds, ms/token (median of 32 after warm-up), prompt tokens/s for 128 and 512
 * tokens, peak RSS, weight bytes read per token, effective GB/s and its share of the measured
 * bandwidth (the same number of Workers streaming 512 MiB together with the f32 decode kernel,
 * best of 8 passes). Runs the Worker backend (lib/backend/wasm), or with `--device webgpu` the
 * WebGPU backend (then the GB/s are the weights read per token over the time per token, and no
 * CPU bandwidth probe). `--json FILE` also appends the run's row
 * (`{ model, dtype, msPerToken, promptTokPerSec, bandwidthGBs, weightBytesPerToken, peakRssMiB }`)
 * to the JSON array in FILE (created if absent), which `bench/chart.ts --decode FILE` draws.
 * @module
 */

import { parseArgs } from "node:util";
import { compileKernels, createFastModel } from "../lib/backend/wasm/mod.ts";
import { createWebGpuModel } from "../lib/backend/webgpu/mod.ts";
import { openCheckpoint } from "../lib/formats/open.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "bf16" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "32" },
    chunk: { type: "string", default: "64" },
    json: { type: "string" }, // FILE: append this run's row to the JSON array in FILE
    device: { type: "string", default: "cpu" },
  },
});
if (!values.model) throw new Error("--model is required");
const threads = Number(values.threads);

/**
 * Read bandwidth with `threads` Workers over 512 MiB (GB/s): each pass starts all the workers
 * together and lasts until the slowest ends; the best of 8 passes.
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

function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss / 2 ** 20;
}

const t0 = performance.now();
const ck = await openCheckpoint(values.model);
const gpu = values.device === "webgpu";
if (!gpu && values.device !== "cpu") throw new Error("--device is cpu or webgpu");
const model = await (gpu ? createWebGpuModel : createFastModel)(ck, {
  dtype: values.dtype as "bf16",
  threads,
  chunk: Number(values.chunk),
});
const loadSeconds = (performance.now() - t0) / 1000;
const info = model.info;
const V = info.vocab;
// Bytes a decode step reads: every weight but the embedding, of which one row is read.
const embBytes = V * info.embd * (info.dtype === "q8" || info.dtype === "q4" ? 2 : 4);
const bytesPerToken = info.weightBytes - embBytes;

const state = model.createState();
let tok = 1;
// Warm-up: V8 starts WebAssembly on its baseline compiler and swaps in optimized code once a
// function is hot; measure after that has happened.
await model.forward(Array.from({ length: 64 }, (_, i) => i), model.createState());
for (let i = 0; i < 16; i++) await model.forward([tok++ % V], state);
const times: number[] = [];
for (let i = 0; i < Number(values.tokens); i++) {
  const t = performance.now();
  await model.forward([(tok++ * 7919) % V], state);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
const msPerToken = times[Math.floor(times.length / 2)];

async function promptRate(n: number): Promise<number> {
  const ids = Array.from({ length: n }, (_, i) => (i * 104729) % V);
  await model.forward(ids.slice(0, 16), model.createState()); // warm the prompt path
  const t = performance.now();
  await model.forward(ids, model.createState());
  return n / ((performance.now() - t) / 1000);
}
const prompt128 = await promptRate(128);
const prompt512 = await promptRate(512);
const peakRss = peakRssMiB(); // before the bandwidth probe adds its own 512 MiB
await model.dispose();
ck.close();
const bw = gpu ? NaN : await bandwidth();
const gbs = bytesPerToken / (msPerToken / 1000) / 1e9;
const result = {
  model: values.model.split("/").pop(),
  version: info.version,
  shape: `${info.layers}×${info.embd}`,
  dtype: info.dtype,
  engine: info.engine,
  threads,
  loadSeconds: +loadSeconds.toFixed(2),
  msPerToken: +msPerToken.toFixed(2),
  prompt128: +prompt128.toFixed(1),
  prompt512: +prompt512.toFixed(1),
  promptSpeedup: +(prompt512 / (1000 / msPerToken)).toFixed(2),
  peakRssMiB: Math.round(peakRss),
  rssLimitMiB: Math.round((1.15 * info.weightBytes + 150e6) / 2 ** 20),
  weightMiB: Math.round(info.weightBytes / 2 ** 20),
  bytesPerTokenMiB: Math.round(bytesPerToken / 2 ** 20),
  effectiveGBs: +gbs.toFixed(1),
  bandwidthGBs: +bw.toFixed(1),
  percentOfBandwidth: Math.round((gbs / bw) * 100),
};
for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(20)} ${v}`);
if (values.json) {
  const rows = await Deno.readTextFile(values.json).then(JSON.parse, () => []);
  rows.push({
    model: result.model?.replace(/\.(safetensors|pth|bin)$/, ""),
    dtype: info.dtype,
    msPerToken: result.msPerToken,
    promptTokPerSec: result.prompt128,
    bandwidthGBs: result.bandwidthGBs,
    weightBytesPerToken: bytesPerToken,
    peakRssMiB: result.peakRssMiB,
  });
  const tmp = `${values.json}.tmp`; // written whole, then renamed into place
  await Deno.writeTextFile(tmp, JSON.stringify(rows, null, 1) + "\n");
  await Deno.rename(tmp, values.json);
}
