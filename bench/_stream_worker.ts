// Streams its share of a shared buffer with the plain read loop (`read_stream`: 16-byte loads
// and integer adds, nothing else), for the read ceiling of bench/_roofline.ts. Each pass is
// asked for by a message; the members then meet on a spin barrier shared by all the workers,
// so the passes compared ran at the same time, and each reports its own duration.
import { instantiateKernels } from "../lib/backend/wasm/kernels.ts";

/** The Worker's global scope, typed without a lib directive. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent) => void;
  postMessage(v: unknown): void;
  close(): void;
};

let k: ReturnType<typeof instantiateKernels>;
let arrived: Int32Array, threads = 0, start = 0, bytes = 0, passes = 0, keep = 0;
scope.onmessage = (e: MessageEvent) => {
  if (e.data.memory) {
    ({ threads, start, bytes } = e.data);
    k = instantiateKernels(e.data.module, e.data.memory);
    arrived = new Int32Array(e.data.sync);
    scope.postMessage({ ready: true });
    return;
  }
  if (e.data.close) return scope.close();
  passes++;
  Atomics.add(arrived, 0, 1);
  while (Atomics.load(arrived, 0) < threads * passes) { /* spin: all start together */ }
  const t = performance.now();
  keep ^= k.read_stream(start, bytes);
  scope.postMessage({ ms: performance.now() - t, keep });
};
