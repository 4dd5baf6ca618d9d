/**
 * One fuzz case, in its own process: opens the file given as the first argument with
 * `openCheckpoint` (limits as JSON in the second, optional), reads every tensor (or, with `load`
 * as the third, runs `loadModel` on it), and prints one
 * JSON line: the outcome, a CRC-32 of each tensor's bytes (up to 256 tensors), the metadata
 * (cut short), the wall and CPU time of opening and reading (CPU time does not grow when other
 * work shares the machine) and the process's peak RSS. An error that is not a typed RwkvError is reported as "untyped";
 * a crash prints nothing, which the parent sees.
 * @module
 */

import { openCheckpoint } from "../lib/formats/open.ts";
import { loadModel } from "../lib/load.ts";
import { RwkvError } from "../lib/errors.ts";
import { crc32 } from "../lib/formats/_crc32.ts";
import { cpuUsage } from "node:process";

const [path, limitsJson, mode] = Deno.args;
const limits = limitsJson ? { limits: JSON.parse(limitsJson) } : {};
const t0 = performance.now(), cpu0 = cpuUsage();
let cpuMs = 0;
const result: Record<string, unknown> = {};
/** Opens the file and reads every tensor. */
async function readAll(): Promise<void> {
  const ck = await openCheckpoint(path, limits);
  try {
    const crcs: Record<string, number> = {};
    const few = ck.tensors.size <= 256;
    for (const [name, t] of ck.tensors) {
      const bytes = await ck.read(name);
      if (bytes.length !== t.byteLength) throw new Error(`${name}: read ${bytes.length} bytes`);
      if (few) crcs[name] = crc32(bytes);
    }
    result.format = ck.format;
    result.count = ck.tensors.size;
    result.crcs = ck.tensors.size <= 256 ? crcs : undefined;
    result.shapes = ck.tensors.size <= 256
      ? Object.fromEntries([...ck.tensors].map(([k, t]) => [k, [t.dtype, ...t.shape]]))
      : undefined;
    const meta = JSON.stringify(ck.metadata);
    result.metadata = meta.length <= 4096 ? ck.metadata : meta.slice(0, 4096);
  } finally {
    ck.close();
  }
}

/** The whole load, as a user's `loadModel` runs it (spec, plan, weights, workers). */
async function load(): Promise<void> {
  const model = await loadModel(path, { threads: 1, ...limits });
  result.count = model.info.layers;
  await model.dispose();
}

try {
  await (mode === "load" ? load() : readAll());
  const c = cpuUsage(cpu0);
  cpuMs = (c.user + c.system) / 1000;
  result.outcome = "ok";
} catch (e) {
  result.outcome = e instanceof RwkvError ? "error" : "untyped";
  result.error = e instanceof RwkvError ? e.name : String((e as Error)?.stack ?? e);
  result.message = (e as Error)?.message?.slice(0, 2000);
  const c = cpuUsage(cpu0);
  cpuMs = (c.user + c.system) / 1000;
}
result.cpuMs = cpuMs;
result.ms = performance.now() - t0;
const status = Deno.readTextFileSync("/proc/self/status");
result.hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
console.log(JSON.stringify(result));
