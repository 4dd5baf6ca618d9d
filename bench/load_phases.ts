/**
 * Where a load's time goes, per file and per checkout, in one process: opening the checkpoint
 * (`openCheckpoint`), and filling the weights (`loadWeights` with the wasm kernels' layout: reads,
 * conversions and the arrangement; no Workers), with the time spent awaiting the checkpoint's
 * reads summed by kind of tensor (large matrices, their scales, the embedding, low-rank factors,
 * vectors: a read's time includes what ran while it was in flight). Files and checkouts
 * alternate, the order reversed every round; medians leave out round 0.
 *
 *   deno run -A --v8-flags=--expose-gc bench/load_phases.ts 9 OURS.safetensors MODEL.gguf [--against DIR] [--pause]
 *
 * `--pause` waits 300 ms after collecting the last load's garbage (its memories are unmapped in
 * the background, which otherwise falls on whatever the next load does first).
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Checkpoint } from "../lib/formats/checkpoint.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { detectSpec } from "../lib/spec/spec.ts";
import { loadWeights } from "../lib/model/weights.ts";
import { KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { against: { type: "string" }, pause: { type: "boolean" } },
});
const [roundsArg, ...files] = positionals;
if (!roundsArg || !files.length) {
  throw new Error("usage: load_phases.ts ROUNDS FILE... [--against DIR] [--pause]");
}

interface Loader {
  label: string;
  open: typeof openCheckpoint;
  detect: typeof detectSpec;
  load: typeof loadWeights;
  layout: typeof KERNEL_LAYOUT;
}
const loaders: Loader[] = [{
  label: "this",
  open: openCheckpoint,
  detect: detectSpec,
  load: loadWeights,
  layout: KERNEL_LAYOUT,
}];
if (values.against) {
  const url = (p: string) => pathToFileURL(resolve(values.against!, p)).href;
  loaders.push({
    label: values.against,
    open: (await import(url("lib/formats/open.ts"))).openCheckpoint,
    detect: (await import(url("lib/spec/spec.ts"))).detectSpec,
    load: (await import(url("lib/model/weights.ts"))).loadWeights,
    layout: (await import(url("lib/backend/wasm/layout.ts"))).KERNEL_LAYOUT,
  });
}

/** The kind of tensor a read is for, by its official name. */
function kind(name: string): string {
  if (name.endsWith(".qscale")) return "r.scale";
  if (name === "emb.weight") return "r.emb";
  if (
    /\.(w1|w2|a1|a2|v1|v2|g1|g2|time_maa_w1|time_maa_w2|time_decay_w1|time_decay_w2)$/.test(name)
  ) {
    return "r.lowrank";
  }
  if (/(key|value|receptance|output|gate)\.weight$|^head\.weight$/.test(name)) return "r.mat";
  return "r.vec";
}

/** Wraps `ck`'s reads so that the time awaiting each is added to `row` under its kind. */
function timed(ck: Checkpoint, row: Record<string, number>): Checkpoint {
  const wrap = <A extends unknown[], R>(f: ((name: string, ...a: A) => Promise<R>) | undefined) =>
    f &&
    (async (name: string, ...a: A): Promise<R> => {
      const t = performance.now();
      try {
        return await f.call(ck, name, ...a);
      } finally {
        row[kind(name)] = (row[kind(name)] ?? 0) + performance.now() - t;
      }
    });
  return {
    ...ck,
    read: wrap(ck.read)!,
    readRange: wrap(ck.readRange),
    readTransposed: wrap(ck.readTransposed),
    readBlocks: wrap(ck.readBlocks),
  };
}

const gc = (globalThis as { gc?: () => void }).gc;
const rows = new Map<string, Record<string, number>[]>();
const rounds = Number(roundsArg);
for (let r = 0; r < rounds; r++) {
  const order = loaders.flatMap((l) => files.map((f) => [l, f] as const));
  if (r % 2) order.reverse();
  for (const [l, f] of order) {
    gc?.();
    if (values.pause) await new Promise((ok) => setTimeout(ok, 300));
    const row: Record<string, number> = {};
    const t0 = performance.now();
    const ck = await l.open(f);
    const t1 = performance.now();
    try {
      await l.load(timed(ck, row), l.detect(ck.tensors, ck.path), { layout: l.layout });
    } finally {
      ck.close();
    }
    const t2 = performance.now();
    Object.assign(row, { open: t1 - t0, weights: t2 - t1, total: t2 - t0 });
    const key = `${l.label} ${f.split("/").pop()}`;
    if (r > 0 || rounds < 3) (rows.get(key) ?? rows.set(key, []).get(key)!).push(row);
  }
}

const med = (x: number[]) => x.slice().sort((a, b) => a - b)[Math.floor(x.length / 2)];
const cols = ["open", "weights", "total", "r.mat", "r.scale", "r.emb", "r.lowrank", "r.vec"];
const width = Math.max(...[...rows.keys()].map((k) => k.length)) + 2;
console.log("median ms".padEnd(width) + cols.map((c) => c.padStart(10)).join(""));
for (const [k, rs] of rows) {
  console.log(
    k.padEnd(width) +
      cols.map((c) => med(rs.map((x) => x[c] ?? 0)).toFixed(1).padStart(10)).join(""),
  );
}
