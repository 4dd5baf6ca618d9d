// Streams its share of a shared buffer with the plain read loop (`read_stream`: 16-byte loads
// and integer adds, nothing else), for the read ceiling of bench/_roofline.ts. Every pass starts
// on a spin barrier shared by all the workers, so the passes compared ran at the same time.
import { instantiateKernels } from "../lib/backend/wasm/kernels.ts";

/** The Worker's global scope, typed without a lib directive. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent) => void;
  postMessage(v: unknown): void;
  close(): void;
};

scope.onmessage = (e: MessageEvent) => {
  const { memory, module, sync, threads, start, bytes, reps } = e.data;
  const k = instantiateKernels(module, memory);
  const arrived = new Int32Array(sync);
  const times: number[] = [];
  let keep = 0;
  for (let i = 0; i < reps; i++) {
    Atomics.add(arrived, 0, 1);
    while (Atomics.load(arrived, 0) < threads * (i + 1)) { /* spin: all start together */ }
    const t = performance.now();
    keep ^= k.read_stream(start, bytes);
    times.push(performance.now() - t);
  }
  scope.postMessage({ times, keep });
  scope.close();
};
