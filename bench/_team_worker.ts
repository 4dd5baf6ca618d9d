// One member of bench/team_ceiling.ts: on each message, meets the others on a spin barrier, then
// either streams its region with the plain read loop (`read_stream`) or runs a decode product
// (`matmul_<dtype>`, one token; with kernel build number `build`) over its matrix `calls` times,
// and reports how long it took.
import { instantiateKernels } from "../lib/backend/wasm/kernels.ts";

/** The Worker's global scope, typed without a lib directive. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent) => void;
  postMessage(v: unknown): void;
  close(): void;
};

let builds: ReturnType<typeof instantiateKernels>[];
let arrived: Int32Array, threads = 0, passes = 0, keep = 0;
scope.onmessage = (e: MessageEvent) => {
  const d = e.data;
  if (d.memory) {
    threads = d.threads;
    builds = d.modules.map((m: WebAssembly.Module) => {
      const k = instantiateKernels(m, d.memory);
      if (d.q8.dot) k.q8_dot(d.q8.dot); // as the engine's Workers (worker.ts)
      k.q8_fused(d.q8.flags);
      return k;
    });
    arrived = new Int32Array(d.sync);
    scope.postMessage({ ready: true });
    return;
  }
  if (d.close) return scope.close();
  passes++;
  Atomics.add(arrived, 0, 1);
  while (Atomics.load(arrived, 0) < threads * passes) { /* spin: all start together */ }
  const k = builds[d.build], t = performance.now();
  for (let c = 0; c < d.calls; c++) {
    if (d.plain) keep ^= k.read_stream(d.w, d.bytes);
    else {
      k.quantize(d.x, d.xq, d.cols, d.dtype === "q8" ? 1 : 0);
      k[`matmul_${d.dtype as "q8" | "q4"}`](d.w, d.s, d.xq, d.y, d.rows, d.cols, 1, 0, d.rows);
    }
  }
  scope.postMessage({ ms: performance.now() - t, keep });
};
