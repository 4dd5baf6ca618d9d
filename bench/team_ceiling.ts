/**
 * What a team of Workers can reach when decoding a q8/q4 model, in one run: the same Workers
 * started together on a spin barrier, each on a region of its own, run
 *
 * - the plain read loop over 256 MiB (the read ceiling `bench/decode.ts` compares with),
 * - the decode product (`matmul_<dtype>`, one token, `--cols` columns) over 256 MiB: the kernel
 *   from memory, as in a token,
 * - the same product over a matrix held in cache (`--cache-mib` each, 6 by default: in this
 *   machine kind's L3 for two Workers), called until as many bytes are read: the kernel with no
 *   wait for memory, the most the team's arithmetic can read whatever the bandwidth,
 *
 * the three interleaved round by round (this machine kind's bandwidth drifts within a minute); each
 * given `kernels.wasm` build adds its two kernel cases (its A/B against the current build, on two
 * Workers together: `bench/shape_ab.ts` is one thread).
 * Prints each one's median and best GB/s (the team's bytes over its slowest member's time) and
 * the kernel's shares of the plain loop. When the kernel from cache reads less than 80 % of what
 * the plain loop reads from memory, no schedule of the same kernel can reach 80 % of that ceiling.
 *
 *   deno run -A bench/team_ceiling.ts --dtype q4 --threads 2 --cols 2560 --seconds 20 [old.wasm …]
 * @module
 */

import { parseArgs } from "node:util";
import { compileKernels, q8Paths, quantizedBytes } from "../lib/backend/wasm/kernels.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "q4" },
    threads: { type: "string", default: "2" },
    cols: { type: "string", default: "2560" },
    mib: { type: "string", default: "256" },
    "cache-mib": { type: "string", default: "6" },
    seconds: { type: "string", default: "20" },
  },
});
const dtype = values.dtype, threads = Number(values.threads), cols = Number(values.cols);
if (dtype !== "q8" && dtype !== "q4") {
  console.error("--dtype: q8 or q4");
  Deno.exit(2);
}
if (!(Number.isInteger(threads) && threads >= 1 && cols > 0 && cols % 32 === 0)) {
  console.error("--threads: a positive integer; --cols: a multiple of 32");
  Deno.exit(2);
}
const MiB = 2 ** 20, value = dtype === "q4" ? 0.5 : 1;
/** Rows of a matrix of about `mib` MiB of values (a multiple of 16). */
const rowsOf = (mib: number) => Math.max(16, Math.floor((mib * MiB) / (cols * value) / 16) * 16);
const memRows = rowsOf(Number(values.mib)), cacheRows = rowsOf(Number(values["cache-mib"]));
const bytesOf = (rows: number) => rows * cols * value + (rows * cols / 32) * 4; // values + scales

// each member: its big matrix, its cached one, its activations, quantized input and output
let top = 65536;
const take = (n: number) => {
  const at = top;
  top += Math.ceil(n / 65536) * 65536;
  return at;
};
const members = Array.from({ length: threads }, () => {
  const big = { w: take(memRows * cols * value), s: take((memRows * cols) / 8) };
  const small = { w: take(cacheRows * cols * value), s: take((cacheRows * cols) / 8) };
  return {
    big,
    small,
    x: take(cols * 4),
    xq: take(quantizedBytes(cols)),
    y: take(Math.max(memRows, cacheRows) * 4),
  };
});
const pages = top / 65536 + 1;
const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
new Uint8Array(memory.buffer).fill(0x3c); // every page touched; a normal scale, any nibbles
for (const m of members) new Float32Array(memory.buffer, m.x, cols).fill(0.5);

const modules = [
  await compileKernels(),
  ...await Promise.all(positionals.map(async (f) => WebAssembly.compile(await Deno.readFile(f)))),
];
const names = ["current", ...positionals];
const q8 = await q8Paths(); // the q8 paths the engine takes on this machine (the fused dot or not)
const sync = new SharedArrayBuffer(4);
const workers = await Promise.all(members.map(() =>
  new Promise<Worker>((resolve) => {
    const wk = new Worker(new URL("./_team_worker.ts", import.meta.url), { type: "module" });
    wk.onmessage = () => resolve(wk);
    wk.postMessage({ memory, modules, sync, threads, q8 });
  })
));

type Case = string;
const PLAIN = "plain loop, memory";
const cases: Case[] = [
  PLAIN,
  ...names.flatMap((n) => [`kernel ${n}, memory`, `kernel ${n}, cache`]),
];
const cacheCalls = Math.max(1, Math.round(memRows / cacheRows));
/** One pass of every member together: the team's GB/s over the slowest member's time. */
async function pass(c: Case): Promise<number> {
  const times = await Promise.all(workers.map((wk, i) => {
    const m = members[i], big = !c.endsWith("cache"), mat = big ? m.big : m.small;
    const rows = big ? memRows : cacheRows;
    return new Promise<number>((resolve) => {
      wk.onmessage = (e) => resolve(e.data.ms);
      wk.postMessage({
        plain: c === PLAIN,
        build: Math.max(0, names.findIndex((n) => c.startsWith(`kernel ${n},`))),
        bytes: bytesOf(memRows),
        calls: big ? 1 : cacheCalls,
        dtype,
        w: mat.w,
        s: mat.s,
        x: m.x,
        xq: m.xq,
        y: m.y,
        rows,
        cols,
      });
    });
  }));
  const bytes = c.endsWith("cache") ? bytesOf(cacheRows) * cacheCalls : bytesOf(memRows);
  return (threads * bytes) / (Math.max(...times) / 1000) / 1e9;
}

const gbs = new Map<Case, number[]>(cases.map((c) => [c, []]));
for (const c of cases) await pass(c); // warm-up
const stop = performance.now() + Number(values.seconds) * 1000;
for (let round = 0; performance.now() < stop || round < 3; round++) {
  for (let i = 0; i < cases.length; i++) {
    const c = cases[(i + round) % cases.length];
    gbs.get(c)!.push(await pass(c));
  }
}
for (const wk of workers) wk.postMessage({ close: true });

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const plain = gbs.get(PLAIN)!;
console.log(
  `${dtype} decode, ${threads} Workers, ${cols} columns, ${plain.length} rounds ` +
    `(memory: ${(bytesOf(memRows) / MiB).toFixed(0)} MiB each; cache: ${
      (bytesOf(cacheRows) / MiB).toFixed(1)
    } MiB each, ${cacheCalls} calls a pass)`,
);
for (const c of cases) {
  const a = gbs.get(c)!;
  const share = c === PLAIN
    ? ""
    : `  ${Math.round((median(a) / median(plain)) * 100)} % of the plain loop's median, ${
      Math.round((Math.max(...a) / Math.max(...plain)) * 100)
    } % of its best`;
  console.log(
    `  ${c.padEnd(Math.max(...cases.map((x) => x.length)))} median ${
      median(a).toFixed(1)
    } GB/s, best ${Math.max(...a).toFixed(1)}${share}`,
  );
}
