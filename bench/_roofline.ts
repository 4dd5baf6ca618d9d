/**
 * The two sides of a decoding roofline: what the machine can read (a plain streaming loop on the
 * same number of Workers as the engine) and what one token must read (the weights as the kernels
 * read them, one embedding row, the state in and out).
 * @module
 */

import { compileKernels, instantiateKernels, type Kernels } from "../lib/backend/wasm/kernels.ts";
import { PROFILE, PROFILE_STRIDE } from "../lib/backend/wasm/mod.ts";
import type { Plan } from "../lib/model/weights.ts";
import { adviseHugePages, hugePagesWanted } from "../lib/model/huge_pages.ts";
import type { MatrixDesc, StorageDType } from "../lib/model/tensor.ts";

/**
 * The plain-loop read ceiling as a probe that stays up: `threads` Workers over `mib` MiB of one
 * shared memory, each {@link ReadProbe.pass} starting them together (a spin barrier) and lasting
 * until the slowest ends. Kept up so that a benchmark can interleave passes with what it
 * measures: this machine kind's bandwidth drifts by ±20 % within a minute, so a ceiling read
 * at another moment than the decoding it is compared with is off by as much.
 * @example
 * ```ts ignore
 * const probe = await ReadProbe.start(2);
 * console.log(await probe.pass()); // GB/s, e.g. 57
 * probe.close();
 * ```
 */
export class ReadProbe {
  readonly #workers: Worker[];
  readonly #bytes: number;
  private constructor(workers: Worker[], bytes: number) {
    this.#workers = workers;
    this.#bytes = bytes;
  }

  /**
   * Starts the Workers over a fresh memory of `mib` MiB (every page touched first); with
   * `hugePages`, one the kernel backs with huge pages as it does the engine's weights (the
   * probe then says whether it got them: {@link ReadProbe.hugePages}).
   */
  static async start(threads: number, mib = 512, hugePages = false): Promise<ReadProbe> {
    const bytes = mib * 2 ** 20, per = Math.floor(bytes / threads / 128) * 128;
    const memory = new WebAssembly.Memory({
      initial: bytes / 65536 + 2,
      maximum: bytes / 65536 + 2,
      shared: true,
    });
    const huge = hugePages && hugePagesWanted(true) &&
      adviseHugePages(memory, memory.buffer.byteLength);
    new Uint8Array(memory.buffer).fill(1); // touch every page before timing
    const module = await compileKernels();
    const sync = new SharedArrayBuffer(4);
    const workers = await Promise.all(
      Array.from({ length: threads }, (_, i) =>
        new Promise<Worker>((resolve) => {
          const wk = new Worker(new URL("./_stream_worker.ts", import.meta.url), {
            type: "module",
          });
          wk.onmessage = () => resolve(wk);
          wk.postMessage({ memory, module, sync, threads, start: 65536 + i * per, bytes: per });
        })),
    );
    const probe = new ReadProbe(workers, per * threads);
    probe.hugePages = huge;
    return probe;
  }

  /** Whether the probe's memory has huge pages. */
  hugePages = false;

  /** One pass of every Worker together: GB/s over the slowest one's time. */
  async pass(): Promise<number> {
    const times = await Promise.all(this.#workers.map((wk) =>
      new Promise<number>((resolve) => {
        wk.onmessage = (e) => resolve(e.data.ms);
        wk.postMessage({ pass: true });
      })
    ));
    return this.#bytes / (Math.max(...times) / 1000) / 1e9;
  }

  /** Ends the Workers (the memory goes with them). */
  close(): void {
    for (const wk of this.#workers) wk.postMessage({ close: true });
  }
}

/**
 * Read bandwidth in GB/s of `threads` Workers streaming `mib` MiB of one shared memory together
 * with the plain loop (16-byte loads, integer adds): the best of `reps` passes of a
 * {@link ReadProbe}.
 * @example
 * ```ts ignore
 * console.log(await readCeiling(2)); // e.g. 57
 * ```
 */
export async function readCeiling(threads: number, mib = 1024, reps = 8): Promise<number> {
  const probe = await ReadProbe.start(threads, mib);
  let best = 0;
  for (let r = 0; r < reps; r++) best = Math.max(best, await probe.pass());
  probe.close();
  return best;
}

/**
 * Bytes a decoding (one-token) kernel reads per value, and per block of 32 values beside them
 * (q8, q4: an f32 scale; q8's i16 −Σq after the scales serve only its several-token path).
 */
export const KERNEL_READ: Record<StorageDType, { value: number; block: number }> = {
  f32: { value: 4, block: 0 },
  bf16: { value: 2, block: 0 },
  f16: { value: 2, block: 0 },
  q8: { value: 1, block: 4 },
  q4: { value: 0.5, block: 4 },
};

/**
 * Bytes the kernels read for a matrix ({@link KERNEL_READ}); `minimal`: the least any engine
 * must read, the quantized formats' own block size (q8: 32 values and a 16-bit scale, 34 bytes;
 * q4: 18), as the issue and rwkv.cpp count them.
 */
function matrixReadBytes(d: MatrixDesc, rows = d.rows, minimal = false): number {
  const n = rows * d.cols, r = KERNEL_READ[d.dtype];
  const block = minimal && (d.dtype === "q8" || d.dtype === "q4") ? 2 : r.block;
  return n * r.value + (n / 32) * block;
}

/**
 * The kernels to compare over one memory: the current build, named "current", then each given
 * `kernels.wasm` file, named by its path.
 * @example
 * ```ts ignore
 * const builds = await kernelBuilds(memory, ["/tmp/variant.wasm"]);
 * ```
 */
export async function kernelBuilds(
  memory: WebAssembly.Memory,
  files: readonly string[],
): Promise<[string, Kernels][]> {
  const builds: [string, Kernels][] = [[
    "current",
    instantiateKernels(await compileKernels(), memory),
  ]];
  for (const f of files) {
    builds.push([f, instantiateKernels(await WebAssembly.compile(await Deno.readFile(f)), memory)]);
  }
  return builds;
}

/**
 * `y = W · x` for T tokens of a matrix of `rows` × `cols` at `w` (block scales at `s`) with the
 * kernels `k`, its input prepared as the wasm backend prepares it (q8/q4 quantized into `xq`,
 * bf16/f16 decode input reordered into `xq`). A build older than `prepare_x` reorders inside
 * the product, so A/B runs against one work as well.
 * @example
 * ```ts ignore
 * runProduct(k, "q8", w, s, x, xq, y, rows, cols, 1);
 * ```
 */
export function runProduct(
  k: Kernels,
  dtype: StorageDType,
  w: number,
  s: number,
  x: number,
  xq: number,
  y: number,
  rows: number,
  cols: number,
  T: number,
): void {
  if (dtype === "q8" || dtype === "q4") {
    k.quantize(x, xq, T * cols, dtype === "q8" ? 1 : 0);
    k[`matmul_${dtype}`](w, s, xq, y, rows, cols, T, 0, rows);
    return;
  }
  const scratch = dtype === "bf16" || dtype === "f16";
  if (scratch && T === 1 && "prepare_x" in k) {
    k.prepare_x(x, xq, cols, dtype === "f16" ? 2 ** 56 : 1);
  }
  k[`matmul_${dtype}`](w, scratch ? xq : 0, x, y, rows, cols, T, 0, rows);
}

/**
 * What one decoded token reads: every matrix once at the size its decode kernel reads (the head
 * included), one embedding row, every weight vector; and the state, read and written once.
 * Counted from a load's plan (`planWeights`), so a benchmark of a model near the machine's
 * memory need not load it twice.
 * @example
 * ```ts ignore
 * const { weights, state } = bytesPerToken(planWeights(ck, spec, "q8", KERNEL_LAYOUT).plans, stateBytes);
 * ```
 */
export function bytesPerToken(
  plans: readonly Plan[],
  stateBytes: number,
): { weights: number; minimal: number; state: number } {
  let weights = 0, minimal = 0;
  for (const p of plans) {
    if (p.kind === "vec") {
      weights += p.count * 4;
      minimal += p.count * 4;
      continue;
    }
    const n = p.kind === "lowrank3" ? p.count / (p.rows * p.cols) : 1;
    const d = { rows: p.rows, cols: p.cols, dtype: p.dtype } as MatrixDesc;
    const rows = p.kind === "emb" ? 1 : p.rows;
    weights += n * matrixReadBytes(d, rows);
    minimal += n * matrixReadBytes(d, rows, true);
  }
  return { weights, minimal, state: 2 * stateBytes };
}

/** One line of a per-token cost breakdown: what, and milliseconds per step. */
export type CostRow = [string, number];

/**
 * Where a step's time went, from a Worker team's `profile` array (see `PROFILE` in
 * `lib/backend/wasm/_profile.ts`) after `steps` steps of `wallMs` each: products by storage,
 * recurrences, per-token steps, embedding, barrier waits (member 0's view), the rest of the
 * pass and the time outside it; and the slowest member's products.
 * @example
 * ```ts ignore
 * const { rows, products, slowest } = costBreakdown(profile, 2, 32, 21.5);
 * ```
 */
export function costBreakdown(
  profile: Float64Array,
  threads: number,
  steps: number,
  wallMs: number,
): { rows: CostRow[]; products: number; slowest: number } {
  const m0 = (k: number) => profile[k] / steps;
  const worst = (k: number) =>
    Math.max(...Array.from({ length: threads }, (_, i) => profile[i * PROFILE_STRIDE + k])) /
    steps;
  const kinds = ["f32", "bf16", "f16", "q8", "q4"] as const;
  const products = kinds.reduce((a, k) => a + m0(PROFILE[k]), 0);
  const counted = products + m0(PROFILE.recurrence) + m0(PROFILE.elementwise) +
    m0(PROFILE.embed) + m0(PROFILE.barrier);
  const pass = m0(PROFILE.pass);
  const rows: CostRow[] = [
    ...kinds.filter((k) => m0(PROFILE[k]) > 0).map((
      k,
    ): CostRow => [`products ${k}`, m0(PROFILE[k])]),
    ["recurrences (own heads)", m0(PROFILE.recurrence)],
    ["per-token steps", m0(PROFILE.elementwise)],
    ["embedding", m0(PROFILE.embed)],
    ["barrier waits", m0(PROFILE.barrier)],
    ["rest of the pass", pass - counted],
    ["outside the pass", wallMs - pass],
  ];
  return { rows, products, slowest: kinds.reduce((a, k) => a + worst(PROFILE[k]), 0) };
}
