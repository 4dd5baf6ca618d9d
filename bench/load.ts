/**
 * How long `loadModel` takes and how much memory it peaks at, beside issue 26's bound (1.05 ×
 * the weights in memory + 512 MiB). With `--against DIR` (another checkout of this repository,
 * e.g. `git worktree add /tmp/old <commit>`) the two loaders run in one process, alternating
 * (the order swapped every round), so the machine's load falls on both alike.
 *
 *   deno run -A bench/make_model.ts --preset 7-2.9b --dtype q8 --fill random --out /tmp/7-2.9b-q8.safetensors
 *   deno run -A --v8-flags=--expose-gc bench/load.ts /tmp/7-2.9b-q8.safetensors [--dtype auto] [--rounds 3] [--against /tmp/old]
 *
 * (`--expose-gc` lets it collect one model's memories before the next load; without it a later
 * load's peak may include the last one's.) Per load: wall seconds, process CPU seconds (all threads), and the load's peak RSS (VmHWM,
 * reset before each load through `/proc/self/clear_refs` where Linux allows it; else the
 * process's peak so far). Reads come from the page cache after the first round (the first
 * round's figures are printed but the medians leave it out when there are 3 or more rounds).
 * Add `--threads N` for the wasm backend's Workers, `--backend reference|wasm|webgpu`.
 * @module
 */

import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { peakRssMiB, resetPeakRss } from "./_rss.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "auto" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    backend: { type: "string", default: "wasm" },
    against: { type: "string" },
  },
});
const file = positionals[0];
if (!file) throw new Error("usage: load.ts MODEL [--dtype D] [--rounds N] [--against DIR]");

type LoadModel = (
  path: string,
  o: Record<string, unknown>,
) => Promise<{ info: { weightBytes: number; dtype: string }; dispose(): Promise<void> }>;

const here = new URL("../lib/load.ts", import.meta.url).href;
const loaders: [string, LoadModel][] = [["new", (await import(here)).loadModel]];
if (values.against) {
  const old = pathToFileURL(resolve(values.against, "lib/load.ts")).href;
  loaders.push(["old", (await import(old)).loadModel]);
}

function cpu(): number {
  const c = cpuUsage();
  return (c.user + c.system) / 1e6;
}

/**
 * Collects garbage when the flag allows, a few times with pauses: a disposed model's memories
 * are freed once its Workers' isolates are gone too.
 */
async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 250));
  }
}

function rssMiB(): number {
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** One load, timed; the model disposed before returning (nothing of it left referenced). */
async function timed(load: LoadModel): Promise<{ s: number; cpu: number; peak: number }> {
  const t = performance.now(), c = cpu();
  const model = await load(file, {
    dtype: values.dtype,
    threads: Number(values.threads),
    backend: values.backend,
  });
  const row = { s: (performance.now() - t) / 1000, cpu: cpu() - c, peak: peakRssMiB() };
  weightMiB = model.info.weightBytes / 2 ** 20;
  dtype = model.info.dtype;
  await model.dispose();
  return row;
}

const rounds = Number(values.rounds);
let weightMiB = 0, dtype = "";
const rows: Record<string, { s: number; cpu: number; peak: number }[]> = {};
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [...loaders].reverse() : loaders;
  for (const [name, load] of order) {
    await collect(); // the last model's memories out of this load's peak
    const before = rssMiB();
    const reset = resetPeakRss();
    const row = await timed(load);
    (rows[name] ??= []).push(row);
    console.log(
      `round ${r} ${name}: ${row.s.toFixed(2)} s, CPU ${row.cpu.toFixed(2)} s, ` +
        `peak RSS ${Math.round(row.peak)} MiB${reset ? "" : " (process peak)"} ` +
        `(${Math.round(before)} MiB before)`,
    );
  }
}
const med = (x: number[]) => x.slice().sort((p, q) => p - q)[x.length >> 1];
const bound = 1.05 * weightMiB + 512;
const summary: Record<string, unknown> = {
  model: file.split("/").pop(),
  dtype,
  backend: values.backend,
  weightMiB: Math.round(weightMiB),
  boundMiB: Math.round(bound),
};
for (const [name] of loaders) {
  const warm = rows[name].length >= 3 ? rows[name].slice(1) : rows[name];
  const peak = Math.max(...rows[name].map((x) => x.peak));
  summary[name] = {
    loadSeconds: +med(warm.map((x) => x.s)).toFixed(2),
    cpuSeconds: +med(warm.map((x) => x.cpu)).toFixed(2),
    peakRssMiB: Math.round(peak),
    withinBound: peak <= bound,
  };
}
if (values.against) {
  const n = summary.new as { loadSeconds: number }, o = summary.old as { loadSeconds: number };
  summary.newOverOld = +(n.loadSeconds / o.loadSeconds).toFixed(3);
}
console.log(JSON.stringify(summary));
