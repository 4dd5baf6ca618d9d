/**
 * `deno bench` of the decode (T = 1) kernels streaming a matrix far larger than the caches,
 * beside the plain read loop on the same bytes: how close each dtype's product comes to what one
 * thread can read.
 *
 *   deno bench -A bench/stream_bench.ts
 *
 * Each group reads one region (plus the block scales of q8/q4) with the plain loop (`read_stream`:
 * 16-byte loads and integer adds, the ceiling) and with `matmul_<dtype>` of a 4096-column matrix
 * of that size times one token: 256 MiB (far larger than the caches: the decode regime) and
 * 8 MiB (held in L3: how fast the kernel itself can go, which is what a machine with faster
 * memory than this one would see). The bytes are a fixed pattern that is a normal number in
 * every float dtype (the kernels' speed does not depend on the values). After the run a table gives
 * each case's GB/s (bytes the kernel must read over its median time) and its share of the
 * ceiling. One thread: the Workers' figures are in `bench/decode.ts` and `bench/profile.ts`.
 * @module
 */

import { compileKernels, instantiateKernels, quantizedBytes } from "../lib/backend/wasm/kernels.ts";
import type { StorageDType } from "../lib/model/tensor.ts";
import { KERNEL_READ, runProduct } from "./_roofline.ts";

const MiB = 2 ** 20, region = 256 * MiB, cols = 4096;
const memory = new WebAssembly.Memory({ initial: 8192, maximum: 8192, shared: true }); // 512 MiB
const k = instantiateKernels(await compileKernels(), memory);
// A/B: with STREAM_BENCH_BASE=path/to/an/older/kernels.wasm every kernel case is also run with
// that build on the same bytes, in the same run (for the "what did this change gain" figures).
const basePath = Deno.env.get("STREAM_BENCH_BASE");
const base = basePath
  ? instantiateKernels(await WebAssembly.compile(await Deno.readFile(basePath)), memory)
  : undefined;
const w = 65536, s = w + region; // the weights, then up to 128 MiB of scales
const x = s + 128 * MiB, xq = x + cols * 4, y = xq + Math.max(quantizedBytes(cols), cols * 4);
new Uint8Array(memory.buffer, w, region + 128 * MiB).fill(0x3c); // 0x3c3c…: ≈ 0.0115 / 1.06 / 60
new Float32Array(memory.buffer, x, cols).fill(0.5);

const times = new Map<string, number[]>();
const bytesOf = new Map<string, number>();

/** Registers a case whose `fn` reads `bytes` bytes, timing each call for the GB/s table. */
function streamCase(
  group: string,
  name: string,
  bytes: number,
  fn: () => void,
  baseline = false,
): void {
  const t: number[] = [];
  times.set(name, t);
  bytesOf.set(name, bytes);
  Deno.bench({
    name,
    group,
    baseline,
    fn() {
      const t0 = performance.now();
      fn();
      t.push(performance.now() - t0);
    },
  });
}

let sink = 0;
// Two sizes: 256 MiB (memory: the decode regime) and 8 MiB (held in this machine kind's 32 MiB
// L3: the kernel's own instruction-bound speed, which decides how it does on a machine whose
// memory is faster than this one's).
for (const [label, size] of [["256 MiB", region], ["8 MiB", 8 * MiB]] as const) {
  const group = `T=1, ${label}`;
  streamCase(group, `read_stream ${label} (ceiling)`, size, () => {
    sink ^= k.read_stream(w, size);
  }, true);
  for (const dtype of ["f32", "bf16", "f16", "q8", "q4"] as StorageDType[]) {
    const { value, block } = KERNEL_READ[dtype];
    const rows = size / (cols * value), n = rows * cols;
    for (const [tag, kk] of base ? [["base ", base], ["", k]] as const : [["", k]] as const) {
      streamCase(
        group,
        `${tag}matmul_${dtype} ${label} (${rows}×${cols})`,
        n * value + (n / 32) * block,
        () => runProduct(kk, dtype, w, s, x, xq, y, rows, cols, 1),
      );
    }
  }
}

globalThis.addEventListener("unload", () => {
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const gbs = (name: string) => bytesOf.get(name)! / (median(times.get(name)!) / 1000) / 1e9;
  console.log(`\nGB/s (one thread, median per call; sink ${sink & 1})`);
  let ceiling = NaN;
  for (const name of times.keys()) {
    if (!times.get(name)!.length) continue;
    const g = gbs(name);
    if (name.startsWith("read_stream")) ceiling = g;
    const share = Number.isFinite(ceiling) ? `${(100 * g / ceiling).toFixed(0)} %` : "";
    console.log(`  ${name.padEnd(36)} ${g.toFixed(1).padStart(6)}  ${share}`);
  }
});
