/**
 * `deno bench` of the loader at a real size: opening a 4.5 GiB `.pth` (ZIP64) written by the
 * project's own writer and reading every tensor, against reading the file's bytes plainly
 * (the group's baseline, so `deno bench` prints the ratio). The file is written once to
 * `$RWKV_BENCH_DIR` (default: the system temp folder) and reused.
 *
 *   deno bench -A bench/checkpoint_bench.ts
 *
 * @module
 */

import { openCheckpoint } from "../lib/formats/open.ts";
import { writePth } from "../lib/formats/pth_write.ts";

const dir = Deno.env.get("RWKV_BENCH_DIR") ?? Deno.env.get("TMPDIR") ?? "/tmp";
const path = `${dir}/rwkv-bench-4.5g.pth`;
const tensorBytes = 256 * 2 ** 20;
const count = 18; // 4.5 GiB: past 4 GiB, so ZIP64 records are used

try {
  await Deno.stat(path);
} catch {
  const chunk = new Uint8Array(tensorBytes);
  for (let i = 0; i < chunk.length; i += 2) chunk[i + 1] = 0x3c;
  await writePth(
    path,
    Array.from({ length: count }, (_, i) => ({
      name: `blocks.${i}.ffn.key.weight`,
      dtype: "BF16" as const,
      shape: [8192, tensorBytes / 2 / 8192],
      data: () => chunk,
    })),
  );
}
const buf = new Uint8Array(tensorBytes);

Deno.bench("plain read of the file", { group: "load 4.5 GiB .pth", baseline: true }, async () => {
  const f = await Deno.open(path);
  while ((await f.read(buf)) !== null) { /* just bytes */ }
  f.close();
});

Deno.bench("openCheckpoint + read every tensor", { group: "load 4.5 GiB .pth" }, async () => {
  const ck = await openCheckpoint(path);
  for (const t of ck.tensors.values()) await ck.read(t.name, buf.subarray(0, t.byteLength));
  ck.close();
});
