/**
 * Loader speed at a real size: writes a `.pth` (4.5 GiB by default: past 4 GiB, so ZIP64
 * records are used) with the project's own writer, then compares opening it and reading every
 * tensor against plainly reading the file's bytes, alternating rounds in one run. With
 * `--against` it also times another copy of the loader (e.g. the previous commit's
 * `lib/formats/open.ts`) in the same rounds, for an A/B comparison. With `--convert` it
 * converts the file to `.safetensors` under `/usr/bin/time -v` and reports the peak RSS.
 *
 * The file goes to a new folder under the system temporary folder (or `--dir`); the bench
 * says where and how big before writing, and removes it at the end, on failure and on Ctrl-C,
 * unless `--keep` (which also reuses a file left there by an earlier `--keep` run).
 *
 *   flock /tmp/bench.lock deno run -A bench/checkpoint_bench.ts [--gib 4.5] [--rounds 3]
 *     [--dir DIR] [--keep] [--against ../old/lib/formats/open.ts] [--convert]
 *
 * Under `deno bench` (the project's `bench` task) it registers the same comparison on a 1 GiB
 * file, removed when the run ends.
 * @module
 */

import { parseArgs } from "node:util";
import { openCheckpoint } from "../lib/formats/open.ts";
import { writePth } from "../lib/formats/pth_write.ts";

type Open = typeof openCheckpoint;
const TENSOR_BYTES = 256 * 2 ** 20; // 256 MiB each, bf16 (the official checkpoints' dtype)

/** Writes a `.pth` of about `gib` GiB at `path` (bf16 tensors of 256 MiB at most). */
async function writeBig(path: string, gib: number): Promise<void> {
  const target = Math.max(1, Math.round(gib * 2 ** 30));
  const count = Math.ceil(target / TENSOR_BYTES);
  const chunk = new Uint8Array(Math.min(TENSOR_BYTES, target));
  for (let i = 0; i < chunk.length; i += 2) chunk[i + 1] = 0x3c; // bf16 values near 0.01
  const rows = 8192, cols = Math.max(1, Math.floor(chunk.length / 2 / rows));
  await writePth(
    path,
    Array.from({ length: count }, (_, i) => ({
      name: `blocks.${i}.ffn.key.weight`,
      dtype: "BF16" as const,
      shape: [rows, cols],
      data: () => chunk.subarray(0, rows * cols * 2),
    })),
    { overwrite: true },
  );
}

async function plainRead(path: string, size: number): Promise<number> {
  const f = await Deno.open(path);
  const buf = new Uint8Array(64 * 2 ** 20);
  let n = 0, r: number | null;
  const t = performance.now();
  while ((r = await f.read(buf)) !== null) n += r;
  f.close();
  if (n !== size) throw new Error("short read");
  return (performance.now() - t) / 1000;
}

async function loaderRead(open: Open, path: string): Promise<number> {
  const t = performance.now();
  const ck = await open(path);
  const buf = new Uint8Array(TENSOR_BYTES);
  for (const info of ck.tensors.values()) {
    await ck.read(info.name, buf.subarray(0, info.byteLength));
  }
  ck.close();
  return (performance.now() - t) / 1000;
}

const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      gib: { type: "string", default: "4.5" },
      rounds: { type: "string", default: "3" },
      dir: { type: "string" },
      keep: { type: "boolean", default: false },
      against: { type: "string" },
      convert: { type: "boolean", default: false },
    },
  });
  const gib = Number(values.gib), rounds = Number(values.rounds);
  if (!(gib > 0) || !(rounds >= 1)) {
    console.error("--gib must be a positive number and --rounds at least 1");
    Deno.exit(2);
  }
  const dir = values.dir ?? await Deno.makeTempDir({ prefix: "rwkv-bench-" });
  const path = `${dir}/big.pth`;
  const removeAll = () => {
    if (values.keep) return;
    try {
      if (values.dir) {
        for (const f of [path, `${dir}/big.safetensors`]) {
          try {
            Deno.removeSync(f);
          } catch { /* absent */ }
        }
      } else Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  };
  const onSignal = () => {
    removeAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    let reuse = false;
    if (values.keep) {
      try {
        reuse = (await Deno.stat(path)).isFile;
      } catch { /* write it */ }
    }
    if (reuse) console.error(`reusing ${path}`);
    else {
      console.error(
        `writing a ${gib} GiB .pth to ${path} (${
          values.keep ? "kept afterwards: --keep" : "removed at the end"
        }) …`,
      );
      await writeBig(path, gib);
    }
    const size = (await Deno.stat(path)).size;
    const other: Open | undefined = values.against
      ? (await import(new URL(values.against, `file://${Deno.cwd()}/`).href)).openCheckpoint
      : undefined;
    // Warm the page cache once, then alternate so every reader sees the same conditions.
    await plainRead(path, size);
    const plain: number[] = [], ours: number[] = [], theirs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      plain.push(await plainRead(path, size));
      if (other) theirs.push(await loaderRead(other, path));
      ours.push(await loaderRead(openCheckpoint, path));
    }
    const gbs = (s: number) => (size / s / 1e9).toFixed(2);
    const line = (label: string, a: number[]) =>
      console.log(
        `${label.padEnd(22)} best ${Math.min(...a).toFixed(2)} s, median ${
          median(a).toFixed(2)
        } s (${gbs(Math.min(...a))} GB/s) over ${a.length} rounds`,
      );
    const ck = await openCheckpoint(path);
    const count = ck.tensors.size;
    ck.close();
    console.log(
      `file: ${(size / 2 ** 30).toFixed(2)} GiB, ${count} tensors (ZIP64: ${size > 2 ** 32})`,
    );
    line("plain read", plain);
    line("open + read all", ours);
    console.log(
      `loader speed = ${(Math.min(...plain) / Math.min(...ours) * 100).toFixed(0)} % of plain read`,
    );
    if (other) {
      line(`against ${values.against}`, theirs);
      console.log(
        `this loader / the other: best ${
          (Math.min(...ours) / Math.min(...theirs) * 100).toFixed(1)
        } %, median ${(median(ours) / median(theirs) * 100).toFixed(1)} % of its time`,
      );
    }
    if (values.convert) {
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
      console.log(
        `convert peak RSS: ${(rssKb / 1024).toFixed(0)} MiB; limit 1.2 × largest tensor + ` +
          `100 MB = ${((1.2 * TENSOR_BYTES + 100e6) / 2 ** 20).toFixed(0)} MiB (exit ${r.code})`,
      );
      await Deno.remove(out).catch(() => {});
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    removeAll();
  }
}

if (import.meta.main) {
  await main();
} else {
  // `deno bench`: the same comparison on a 1 GiB file in a temporary folder.
  const dir = await Deno.makeTempDir({ prefix: "rwkv-bench-" });
  const path = `${dir}/big.pth`;
  console.error(`checkpoint_bench: writing a 1 GiB .pth to ${path} (removed when the run ends)`);
  await writeBig(path, 1);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const size = (await Deno.stat(path)).size;
  Deno.bench("plain read of the file", { group: "load 1 GiB .pth", baseline: true }, async () => {
    await plainRead(path, size);
  });
  Deno.bench("openCheckpoint + read every tensor", { group: "load 1 GiB .pth" }, async () => {
    await loaderRead(openCheckpoint, path);
  });
}
