/**
 * Seeded random numbers for tests and benchmarks: one generator, the library's own (mulberry32,
 * `makeRng` in lib/sample.ts), so the same seed gives the same numbers everywhere.
 * @module
 */

import { makeRng } from "../lib/sample.ts";

/** A seeded generator of uniform floats in [0, 1): the same seed gives the same numbers. */
export const rng: (seed: number) => () => number = makeRng;

/** `n` seeded uniform values in [lo, hi). */
export function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = makeRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + r() * (hi - lo);
  return out;
}
