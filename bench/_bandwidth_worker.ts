/// <reference lib="deno.worker" />
// Reads its share of a shared buffer with the f32 kernel (a pure streaming read), for
// bench/decode.ts's bandwidth measurement. Every pass starts on a spin barrier shared by all
// the workers, so the passes the main thread compares ran at the same time.
import { instantiateKernels } from "../lib/backend/wasm/kernels.ts";

self.onmessage = (e) => {
  const { memory, module, sync, threads, w, x, y, rows, cols, r0, r1, reps } = e.data;
  const k = instantiateKernels(module, memory);
  const arrived = new Int32Array(sync);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    Atomics.add(arrived, 0, 1);
    while (Atomics.load(arrived, 0) < threads * (i + 1)) { /* spin: all start together */ }
    const t = performance.now();
    k.matmul_f32(w, 0, x, y, rows, cols, 1, r0, r1);
    times.push(performance.now() - t);
  }
  self.postMessage(times);
  self.close();
};
