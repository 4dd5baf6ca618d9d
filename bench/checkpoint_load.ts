/**
 * Loader speed at a real size: writes a multi-GiB `.pth` (over 4 GiB by default, so ZIP64
 * records are exercised) with the project's own writer into a temporary folder, then compares
 * opening it and reading every tensor against plainly reading the file's bytes, in one run.
 * Also converts it to `.safetensors` under `/usr/bin/time -v` to report the peak RSS.
 *
 *   deno run -A bench/checkpoint_load.ts [--gib 4.5] [--keep DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { openCheckpoint } from "../lib/formats/open.ts";
import { writePth } from "../lib/formats/pth_write.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { gib: { type: "string", default: "4.5" }, keep: { type: "string" } },
});
const dir = values.keep ?? await Deno.makeTempDir({ prefix: "rwkv-bench-" });
const path = `${dir}/big.pth`;
const target = Number(values.gib) * 2 ** 30;
const tensorBytes = 256 * 2 ** 20; // 256 MiB each, bf16 (the official checkpoints' dtype)
const count = Math.ceil(target / tensorBytes);
const rows = 8192, cols = tensorBytes / 2 / rows;

try {
  await Deno.stat(path);
  console.error(`reusing ${path}`);
} catch {
  console.error(`writing ${count} × 256 MiB tensors to ${path} …`);
  const chunk = new Uint8Array(tensorBytes);
  for (let i = 0; i < chunk.length; i += 2) chunk[i + 1] = 0x3c; // bf16 values near 0.01
  await writePth(
    path,
    Array.from({ length: count }, (_, i) => ({
      name: `blocks.${i}.ffn.key.weight`,
      dtype: "BF16" as const,
      shape: [rows, cols],
      data: () => chunk,
    })),
    { overwrite: true },
  );
}
const size = (await Deno.stat(path)).size;

async function plainRead(): Promise<number> {
  const f = await Deno.open(path);
  const buf = new Uint8Array(64 * 2 ** 20);
  let n = 0, r: number | null;
  const t = performance.now();
  while ((r = await f.read(buf)) !== null) n += r;
  f.close();
  if (n !== size) throw new Error("short read");
  return (performance.now() - t) / 1000;
}

async function loaderRead(): Promise<number> {
  const t = performance.now();
  const ck = await openCheckpoint(path);
  const buf = new Uint8Array(tensorBytes);
  for (const info of ck.tensors.values()) {
    await ck.read(info.name, buf.subarray(0, info.byteLength));
  }
  ck.close();
  return (performance.now() - t) / 1000;
}

// Warm the page cache once, then alternate so both see the same conditions.
await plainRead();
const plain: number[] = [], loader: number[] = [];
for (let i = 0; i < 3; i++) {
  plain.push(await plainRead());
  loader.push(await loaderRead());
}
const best = (a: number[]) => Math.min(...a);
const gbs = (s: number) => (size / s / 1e9).toFixed(2);
console.log(
  `file: ${(size / 2 ** 30).toFixed(2)} GiB, ${count} tensors (ZIP64: ${size > 2 ** 32})`,
);
console.log(`plain read:      ${best(plain).toFixed(2)} s  (${gbs(best(plain))} GB/s)`);
console.log(`open + read all: ${best(loader).toFixed(2)} s  (${gbs(best(loader))} GB/s)`);
console.log(`loader speed = ${(best(plain) / best(loader) * 100).toFixed(0)} % of plain read`);

// Conversion peak RSS, measured by the kernel through /usr/bin/time.
const out = `${dir}/big.safetensors`;
const cli = new URL("../cli/convert.ts", import.meta.url).pathname;
const r = await new Deno.Command("/usr/bin/time", {
  args: ["-v", Deno.execPath(), "run", "-A", cli, path, out, "--force", "--quiet"],
  stderr: "piped",
  stdout: "null",
}).output();
const text = new TextDecoder().decode(r.stderr);
const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1] ?? NaN);
const largest = tensorBytes;
console.log(
  `convert peak RSS: ${(rssKb / 1024).toFixed(0)} MiB; limit 1.2 × largest tensor + 100 MB = ${
    ((1.2 * largest + 100e6) / 2 ** 20).toFixed(0)
  } MiB (exit ${r.code})`,
);
if (!values.keep) await Deno.remove(dir, { recursive: true });
