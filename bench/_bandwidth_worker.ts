/// <reference lib="deno.worker" />
// Reads its half of a shared buffer with the f32 kernel (a pure streaming read), for
// bench/decode.ts's bandwidth measurement.
import { instantiateKernels } from "../lib/engine/kernels.ts";

self.onmessage = (e) => {
  const { memory, module, w, x, y, rows, cols, r0, r1, reps } = e.data;
  const k = instantiateKernels(module, memory);
  // best of `reps` passes: the first ones run before V8 has optimized the kernel
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    k.matmul_f32(w, 0, x, y, rows, cols, 1, r0, r1);
    best = Math.min(best, performance.now() - t);
  }
  self.postMessage(best);
  self.close();
};
