/**
 * `deno bench` of the sampler on a 65536-token vocabulary (a World model's): one sample and
 * accept per iteration, for nucleus, top-k and min-p filtering. (Moved here from the tests:
 * speed is measured in benches, never asserted in tests.)
 *
 *   deno bench -A bench/sample_bench.ts
 *
 * @module
 */

import { makeRng, Sampler, type SamplerOptions } from "../lib/sample.ts";

const V = 65536;
const rng = makeRng(1);
const noisy = new Float32Array(V).map(() => rng() * 10);

const cases: [string, SamplerOptions][] = [
  ["top-p 0.85", { topP: 0.85 }],
  ["top-k 50", { topK: 50, topP: 1 }],
  ["min-p 0.1", { minP: 0.1 }],
];
for (const [name, options] of cases) {
  const s = new Sampler({ seed: 1, ...options });
  Deno.bench(`sampler: ${name}, vocabulary ${V}`, () => {
    s.accept(s.sample(noisy));
  });
}
