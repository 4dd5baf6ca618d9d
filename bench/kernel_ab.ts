/**
 * A/B of kernel builds on the same bytes, calls interleaved round-robin so that a noisy
 * machine's drift falls on every build alike (`deno bench` runs one case after another).
 *
 *   deno run -A bench/kernel_ab.ts --dtype q8 --mib 8 --seconds 4 old.wasm [more.wasm …]
 *   deno run -A bench/kernel_ab.ts --dtype q8 --tokens 16 old.wasm   # prompt mode
 *   deno run -A bench/kernel_ab.ts --dtype bf16 --mib 256 --cols 10240 old.wasm   # long rows
 *
 * Compares each given `kernels.wasm` build with the current one (`lib/backend/wasm/kernels.wasm`)
 * on one thread: `matmul_<dtype>` of a `--cols`-column matrix (default 4096; a multiple of 32) of
 * `--mib` MiB times `--tokens` tokens
 * (default 1: decoding; GB/s then counts the weights once per call whatever the tokens) (8 MiB
 * stays in this machine kind's L3: the kernel's own speed; 256 MiB: the memory regime), and the
 * plain read loop on the same bytes. Prints each build's median GB/s and its ratio to the first.
 * @module
 */

import { parseArgs } from "node:util";
import { type Kernels, quantizedBytes } from "../lib/backend/wasm/kernels.ts";
import { KERNEL_READ, kernelBuilds, runProduct } from "./_roofline.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "q8" },
    mib: { type: "string", default: "8" },
    seconds: { type: "string", default: "4" },
    tokens: { type: "string", default: "1" },
    cols: { type: "string", default: "4096" },
  },
});
const dtype = values.dtype as "f32" | "bf16" | "f16" | "q8" | "q4";
if (!(dtype in KERNEL_READ)) {
  console.error(`--dtype: one of ${Object.keys(KERNEL_READ).join(", ")}`);
  Deno.exit(2);
}
const MiB = 2 ** 20, size = Number(values.mib) * MiB, cols = Number(values.cols);
const T = Number(values.tokens);
if (!(cols > 0 && cols % 32 === 0)) {
  console.error("--cols: a positive multiple of 32");
  Deno.exit(2);
}
const { value, block } = KERNEL_READ[dtype];
const rows = Math.floor(size / (cols * value) / 16) * 16, // whole q8/q4 row groups and bands
  n = rows * cols,
  bytes = n * value + (n / 32) * block;
const pages = Math.ceil((65536 + size * 1.5 + 2 * MiB + T * (cols * 8 + rows * 4)) / 65536);
const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
const w = 65536,
  s = w + size,
  x = s + size / 2,
  xq = x + cols * 4,
  y = xq + Math.max(quantizedBytes(T * cols), T * cols * 4);
new Uint8Array(memory.buffer, w, size * 1.5).fill(0x3c); // a normal number in every float dtype
new Float32Array(memory.buffer, x, T * cols).fill(0.5);

const builds = await kernelBuilds(memory, positionals);
const run = (k: Kernels) => runProduct(k, dtype, w, s, x, xq, y, rows, cols, T);
const times: number[][] = builds.map(() => []), plain: number[] = [];
let sink = 0;
const end = performance.now() + Number(values.seconds) * 1000;
for (let round = 0; performance.now() < end || round < 8; round++) {
  for (let i = 0; i < builds.length; i++) {
    const j = (i + round) % builds.length, t = performance.now();
    run(builds[j][1]);
    times[j].push(performance.now() - t);
  }
  const t = performance.now();
  sink ^= builds[0][1].read_stream(w, size);
  plain.push(performance.now() - t);
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const gbs = (a: number[], b = bytes) => b / (median(a) / 1000) / 1e9;
console.log(
  `${dtype} ${rows}×${cols} (${(bytes / MiB).toFixed(0)} MiB read), one thread, ${
    times[0].length
  } interleaved calls each; plain read loop ${gbs(plain, size).toFixed(1)} GB/s${
    sink & 0 ? "" : ""
  }`,
);
for (let i = 0; i < builds.length; i++) {
  const g = gbs(times[i]);
  console.log(
    `  ${builds[i][0].padEnd(28)} ${g.toFixed(1).padStart(6)} GB/s  ${
      (100 * g / gbs(plain, size)).toFixed(0)
    } % of the loop  ×${(g / gbs(times[0])).toFixed(2)} vs current`,
  );
}
