/**
 * One thread, from memory, at the sizes the engine calls them: a q8/q4 decode product of each
 * given shape (rows × columns: one Worker's share of a model's matrix) over many copies laid out
 * one after another (`--mib` of weights), so that every call streams from memory as in a token;
 * the current kernels and any given `kernels.wasm` builds interleaved round by round.
 *
 *   deno run -A bench/shape_ab.ts --dtype q4 --shapes 1280x2560,1280x10240 [variant.wasm …]
 *
 * What it showed (docs/SPEED.md): q4's long rows read 0.7× the rate of short ones, its
 * activations leaving the first-level cache between two bands.
 * @module
 */

import { parseArgs } from "node:util";
import { quantizedBytes } from "../lib/backend/wasm/kernels.ts";
import { kernelBuilds } from "./_roofline.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "q4" },
    shapes: { type: "string", default: "1280x2560,1280x10240" },
    mib: { type: "string", default: "320" },
    seconds: { type: "string", default: "6" },
  },
});
const dtype = values.dtype;
if (dtype !== "q8" && dtype !== "q4") {
  console.error("--dtype: q8 or q4");
  Deno.exit(2);
}
const shapes = values.shapes.split(",").map((s) => s.split("x").map(Number));
if (shapes.some(([r, c]) => !(r > 0 && r % 16 === 0 && c > 0 && c % 32 === 0))) {
  console.error("--shapes: ROWSxCOLS,… with rows a multiple of 16 and columns of 32");
  Deno.exit(2);
}
const MiB = 2 ** 20, budget = Number(values.mib) * MiB;
const value = dtype === "q4" ? 0.5 : 1, mode = dtype === "q8" ? 1 : 0;
const maxCols = Math.max(...shapes.map(([, c]) => c)),
  maxRows = Math.max(...shapes.map(([r]) => r));
const scaleBudget = budget / 8 / value; // a 4-byte scale per 32 values
const w = 65536, s = w + budget, x = s + scaleBudget + 65536, xq = x + maxCols * 4;
const y = xq + quantizedBytes(maxCols) + 4096, end = y + maxRows * 4 + 65536;
const pages = Math.ceil(end / 65536);
const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
new Uint8Array(memory.buffer, w, budget + scaleBudget).fill(0x3c);
new Float32Array(memory.buffer, x, maxCols).fill(0.5);
const builds = await kernelBuilds(memory, positionals);
for (const [rows, cols] of shapes) {
  const wBytes = rows * cols * value, sBytes = (rows * cols / 32) * 4;
  const copies = Math.max(1, Math.floor(budget / wBytes));
  const times: number[][] = builds.map(() => []);
  const stop = performance.now() + Number(values.seconds) * 1000;
  for (let round = 0; performance.now() < stop || round < 4; round++) {
    for (let i = 0; i < builds.length; i++) {
      const j = (i + round) % builds.length, k = builds[j][1], t = performance.now();
      for (let c = 0; c < copies; c++) {
        k.quantize(x, xq, cols, mode);
        k[`matmul_${dtype}`](w + c * wBytes, s + c * sBytes, xq, y, rows, cols, 1, 0, rows);
      }
      times[j].push(performance.now() - t);
    }
  }
  const gbs = (a: number[]) =>
    copies * (wBytes + sBytes) / [...a].sort((p, q) => p - q)[a.length >> 1] / 1e6;
  console.log(
    `${dtype} ${rows}×${cols} ×${copies}: ${
      builds.map(([name], i) => `${name} ${gbs(times[i]).toFixed(1)}`).join(" | ")
    } GB/s`,
  );
}
