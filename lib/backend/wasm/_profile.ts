/**
 * The wasm backend's profiler: milliseconds by kind of step, added up per member in a shared
 * Float64Array that the pool hands out (`bench/decode.ts`, `bench/profile.ts` read it).
 * @module
 */

/**
 * Where a profiling team adds up milliseconds (each member a row of {@link PROFILE_STRIDE}): the
 * products by storage, the barrier waits, the recurrences, the per-token steps, the embedding,
 * and (member 0) whole passes and their count. A member whose row holds a nonzero `paused`
 * times nothing (set it in every row, between passes, to run without profiling's cost: two
 * `performance.now()` calls of about 160 ns around every step and every chunk).
 */
export const PROFILE = {
  f32: 0,
  bf16: 1,
  f16: 2,
  q8: 3,
  q4: 4,
  barrier: 5,
  recurrence: 6,
  elementwise: 7,
  embed: 8,
  pass: 9,
  passes: 10,
  paused: 11,
} as const;

const PER_TOKEN_STEPS = [
  "norm",
  "act",
  "shift",
  "keepLast",
  "lastRows",
  "columns",
  "tmix",
  "add",
  "sigmoidMulAdd",
  "siluMul",
] as const;

/** Values per member in a profile array. */
export const PROFILE_STRIDE = 16;

/**
 * One member's timing: {@link Profiler.now} is 0 when not profiling (or paused), and
 * {@link Profiler.took} then adds nothing, so the calls cost a branch when off.
 * @example
 * ```ts
 * import { barrier } from "./_barrier.ts";
 * declare const prof: Profiler, ctrl: Int32Array, n: number;
 * const t0 = prof.now();
 * barrier(ctrl, n);
 * prof.took(PROFILE.barrier, t0);
 * ```
 */
export class Profiler {
  readonly #row: Float64Array | undefined; // this member's PROFILE sums, when profiling

  /** `profile`: the team's sums ({@link PROFILE_STRIDE} per member), undefined: not profiling. */
  constructor(profile: Float64Array | undefined, id: number) {
    this.#row = profile?.subarray(id * PROFILE_STRIDE, (id + 1) * PROFILE_STRIDE);
  }

  /** Now, when profiling (0 when not, or paused). */
  now(): number {
    return this.#row && !this.#row[PROFILE.paused] ? performance.now() : 0;
  }

  /** Adds the time since `t0` (from {@link Profiler.now}) to kind `k`, when profiling. */
  took(k: number, t0: number): void {
    if (t0) this.#row![k] += performance.now() - t0;
  }

  /**
   * Times `ops`' per-token steps as {@link PROFILE}.elementwise, when profiling (no cost
   * otherwise: the methods are left as they are).
   */
  timeSteps(ops: object): void {
    if (!this.#row) return;
    const self = ops as Record<string, (...a: unknown[]) => void>;
    for (const name of PER_TOKEN_STEPS) {
      const step = self[name].bind(ops);
      self[name] = (...a) => {
        const t0 = this.now();
        step(...a);
        this.took(PROFILE.elementwise, t0);
      };
    }
  }
}
