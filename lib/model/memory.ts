/**
 * Whether a model fits, decided before anything large is allocated: the bytes its weights take
 * in the asked dtype (from the load's plan) beside what the system has available, and, for a
 * backend that keeps them in one 32-bit WebAssembly memory, beside 4 GiB. A model that does not
 * fit is refused with the figures and the dtype that would.
 * @module
 */

import { OutOfMemoryError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import type { ModelSpec } from "../spec/spec.ts";
import { planWeights } from "./_weights_plan.ts";
import type { MatrixLayout, StorageDType } from "./tensor.ts";

/**
 * Bytes a load needs beyond its weights: the runtime, a backend's buffers, the scratch.
 * @example
 * ```ts
 * import { LOAD_OVERHEAD_BYTES } from "./memory.ts";
 * console.log(LOAD_OVERHEAD_BYTES / 2 ** 20); // 256
 * ```
 */
export const LOAD_OVERHEAD_BYTES = 256 * 2 ** 20;

/** Bytes one 32-bit WebAssembly memory holds at most (65536 pages of 64 KiB). */
const WASM_MEMORY_BYTES = 2 ** 32;

/** Room a backend's buffers take in a shared single memory beside the weights. */
const SINGLE_MEMORY_BUFFERS = 64 * 2 ** 20;

/**
 * The memory the system can give now: `MemAvailable` from /proc/meminfo on Linux (free memory
 * plus what the page cache would give back), else `Deno.systemMemoryInfo().available`; Infinity
 * when neither can be read.
 * @example
 * ```ts
 * import { availableMemory } from "./memory.ts";
 * console.log(availableMemory() > 0); // true
 * ```
 */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/meminfo"));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux, or no permission */ }
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return Infinity;
  }
}

/**
 * Where the weights must fit.
 * @example
 * ```ts
 * import type { FitOptions } from "./memory.ts";
 * const where: FitOptions = { dtype: "q8", singleMemory: true, availableBytes: 8 * 2 ** 30 };
 * ```
 */
export interface FitOptions {
  /** The dtype asked for (`auto`: the checkpoint's own). */
  dtype: StorageDType | "auto";
  /** The backend's matrix layout (its bytes per matrix). */
  layout?: MatrixLayout;
  /** Bytes the load may take (default {@link availableMemory}). */
  availableBytes?: number;
  /** The backend keeps weights and buffers in one 32-bit WebAssembly memory (4 GiB at most). */
  singleMemory?: boolean;
  /** The backend's name, for the message. */
  backend?: string;
}

const GiB = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
/** Storage dtypes from the most precise to the smallest. */
const BY_SIZE: readonly StorageDType[] = ["f32", "bf16", "f16", "q8", "q4"];

/**
 * Refuses a load that cannot fit, before anything large is allocated: throws an
 * {@link OutOfMemoryError} saying what the weights need in `dtype` (`bytes`, from the load's
 * plan, plus {@link LOAD_OVERHEAD_BYTES}), what is available, and the most precise smaller dtype
 * that would fit, or that none would.
 * @example
 * ```ts
 * import { KERNEL_LAYOUT } from "../backend/wasm/layout.ts";
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * import type { ModelSpec } from "../spec/spec.ts";
 * declare const ck: Checkpoint, spec: ModelSpec, plan: { bytes: number };
 * checkFits(ck, spec, plan.bytes, { dtype: "q8", layout: KERNEL_LAYOUT, singleMemory: true });
 * ```
 */
export function checkFits(
  ck: Checkpoint,
  spec: ModelSpec,
  bytes: number,
  options: FitOptions,
): void {
  const available = options.availableBytes ?? availableMemory();
  const system = available - LOAD_OVERHEAD_BYTES;
  const wasm = options.singleMemory ? WASM_MEMORY_BYTES - SINGLE_MEMORY_BUFFERS : Infinity;
  const limit = Math.min(system, wasm);
  if (bytes <= limit) return;
  const asked = options.dtype === "auto" ? "its own dtype" : options.dtype;
  // the smaller dtypes, most precise first, with what each needs
  const need = (d: StorageDType) => planWeights(ck, spec, d, options.layout).bytes;
  const smaller = BY_SIZE.map((d) => ({ d, bytes: need(d) })).filter((x) => x.bytes < bytes);
  const fit = smaller.find((x) => x.bytes <= limit);
  const where = wasm < system
    ? `the ${
      options.backend ?? "wasm"
    } backend holds weights and buffers in one WebAssembly memory of at most 4 GiB`
    : `${GiB(Math.max(0, available))} is available (a load takes about ${
      GiB(LOAD_OVERHEAD_BYTES)
    } more than its weights)`;
  const advice = fit
    ? `${fit.d} (${GiB(fit.bytes)}) would fit`
    : smaller.length
    ? `no dtype fits (the smallest, ${smaller[smaller.length - 1].d}, needs ${
      GiB(smaller[smaller.length - 1].bytes)
    })`
    : "no smaller dtype exists";
  throw new OutOfMemoryError(
    `${ck.path}: the model's weights need ${GiB(bytes)} as ${asked}, but ${where}: ${advice}`,
    bytes,
    Math.max(0, limit),
    fit?.d,
  );
}
