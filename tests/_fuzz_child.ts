/**
 * One fuzz case, in its own process: opens the file given as the first argument with
 * `openCheckpoint` (limits as JSON in the second, optional), reads every tensor, and prints one
 * JSON line: the outcome, a CRC-32 of each tensor's bytes (up to 256 tensors), the metadata
 * (cut short), the wall and CPU time of opening and reading (CPU time does not grow when other
 * work shares the machine) and the process's peak RSS. An error that is not a typed RwkvError is reported as "untyped";
 * a crash prints nothing, which the parent sees.
 * @module
 */

import { openCheckpoint } from "../lib/formats/open.ts";
import { RwkvError } from "../lib/errors.ts";
import { crc32 } from "../lib/formats/_crc32.ts";
import { cpuUsage } from "node:process";

const [path, limitsJson] = Deno.args;
const t0 = performance.now(), cpu0 = cpuUsage();
let cpuMs = 0;
const result: Record<string, unknown> = {};
try {
  const ck = await openCheckpoint(path, limitsJson ? { limits: JSON.parse(limitsJson) } : {});
  try {
    const crcs: Record<string, number> = {};
    const few = ck.tensors.size <= 256;
    for (const [name, t] of ck.tensors) {
      const bytes = await ck.read(name);
      if (bytes.length !== t.byteLength) throw new Error(`${name}: read ${bytes.length} bytes`);
      if (few) crcs[name] = crc32(bytes);
    }
    const c = cpuUsage(cpu0);
    cpuMs = (c.user + c.system) / 1000;
    result.outcome = "ok";
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
