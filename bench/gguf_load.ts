/**
 * Loading a Q8_0 (or Q4_0) GGUF against loading our own q8 (q4) file of the same model, in one
 * process, alternating A and B; then decoding with each. Both land on the same q8/q4 kernels:
 * the GGUF's integers are re-packed at load (its blocks interleave a scale with the values),
 * ours are copied.
 *
 *   deno run -A bench/make_model.ts --preset 7-0.4b --out /tmp/gguf/7-0.4b.safetensors
 *   deno run -A cli/convert.ts /tmp/gguf/7-0.4b.safetensors /tmp/gguf/7-0.4b-q8.safetensors --quant q8
 *   deno run -A cli/convert.ts /tmp/gguf/7-0.4b.safetensors /tmp/gguf/7-0.4b-Q8_0.gguf --type q8_0 --tokenizer rwkv_vocab_v20230424.txt
 *   deno run -A bench/gguf_load.ts /tmp/gguf/7-0.4b-q8.safetensors /tmp/gguf/7-0.4b-Q8_0.gguf [rounds] [tokens] [--against DIR]
 *
 * With `--against DIR` (another checkout, e.g. `git worktree add /tmp/old main`) both files are
 * also loaded by that checkout's loader in the same rounds (the four loads' order rotated each
 * round), and its ratio printed beside this one's.
 *
 * (the World vocabulary file, e.g. `../shared/fixtures/tokenizers/`: it does not change the
 * weights.)
 * @module
 */

import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { loadModel } from "../lib/load.ts";
import type { Model } from "../lib/model/model.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { against: { type: "string" } },
});
const [ours, gguf, roundsArg, tokensArg] = positionals;
if (!ours || !gguf) {
  throw new Error(
    "usage: gguf_load.ts OURS.safetensors MODEL.gguf [rounds] [tokens] [--against DIR]",
  );
}
const rounds = Number(roundsArg ?? 3), tokens = Number(tokensArg ?? 16);
type Load = (path: string, o: Record<string, unknown>) => Promise<Model>;
const loaders: [string, Load][] = [["", loadModel]];
if (values.against) {
  const old = pathToFileURL(resolve(values.against, "lib/load.ts")).href;
  loaders.push([`${values.against}: `, (await import(old)).loadModel]);
}

/** Process CPU seconds (all threads): what a load costs, whatever else shares the machine. */
function cpu(): number {
  const c = cpuUsage();
  return (c.user + c.system) / 1e6;
}

async function load(
  path: string,
  loader: Load = loadModel,
): Promise<{ model: Model; s: number; cpu: number }> {
  const t = performance.now(), c = cpu();
  const model = await loader(path, { threads: 2, device: "cpu" });
  return { model, s: (performance.now() - t) / 1000, cpu: cpu() - c };
}

// per loader: wall and CPU seconds of ours and of the GGUF
const times = loaders.map(() => ({
  a: [] as number[],
  b: [] as number[],
  ca: [] as number[],
  cb: [] as number[],
}));
const order: [number, "ours" | "gguf"][] = loaders.flatMap((_, k) =>
  (["ours", "gguf"] as const).map((w) => [k, w] as [number, "ours" | "gguf"])
);
for (let r = 0; r < rounds; r++) {
  // rotate which goes first, so none always meets a warm page cache first
  for (let i = 0; i < order.length; i++) {
    const [k, which] = order[(i + r) % order.length];
    const { model, s, cpu } = await load(which === "ours" ? ours : gguf, loaders[k][1]);
    const t = times[k];
    (which === "ours" ? t.ca : t.cb).push(cpu);
    if (r === 0 && k === 0 && which === "gguf") console.log(`GGUF loads as ${model.info.dtype}`);
    (which === "ours" ? t.a : t.b).push(s);
    await model.dispose();
  }
}
const med = (x: number[]) => x.slice().sort((p, q) => p - q)[Math.floor(x.length / 2)];
loaders.forEach(([label], k) => {
  const { a, b, ca, cb } = times[k];
  console.log(
    `${label}load  ours ${a.map((x) => x.toFixed(2)).join(" ")} s   gguf ${
      b.map((x) => x.toFixed(2)).join(" ")
    } s`,
  );
  console.log(
    `${label}load median: ours ${med(a).toFixed(2)} s, gguf ${med(b).toFixed(2)} s: gguf/ours ${
      (med(b) / med(a)).toFixed(2)
    }`,
  );
  console.log(
    `${label}load CPU (all threads) median: ours ${med(ca).toFixed(2)} s, gguf ${
      med(cb).toFixed(2)
    } s: gguf/ours ${(med(cb) / med(ca)).toFixed(2)}`,
  );
});

// Decoding: both models loaded, one token each in turn (the order swapped every token), so the
// machine's load falls on both alike.
const mo = (await load(ours)).model, mg = (await load(gguf)).model;
const so = mo.createState(), sg = mg.createState();
for (let i = 0; i < 2; i++) {
  await mo.forward([i + 1], so);
  await mg.forward([i + 1], sg);
}
const da: number[] = [], db: number[] = [];
for (let i = 0; i < tokens; i++) {
  const pair: [Model, ReturnType<Model["createState"]>, number[]][] = [[mo, so, da], [mg, sg, db]];
  for (const [m, st, out] of i % 2 ? pair.reverse() : pair) {
    const t = performance.now();
    await m.forward([3 + (i % 50)], st);
    out.push(performance.now() - t);
  }
}
console.log(
  `decode median (interleaved): ours ${med(da).toFixed(1)} ms/token, gguf ${med(db).toFixed(1)} ` +
    `ms/token: gguf/ours ${(med(db) / med(da)).toFixed(2)}`,
);
await mo.dispose();
await mg.dispose();
