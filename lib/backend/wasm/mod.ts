/**
 * The `wasm` backend: a team of Workers over shared memory running WebAssembly SIMD kernels.
 * @module
 */

export {
  createFastModel,
  createWasmModel,
  defaultThreads,
  type FastModelOptions,
  type WasmModelOptions,
} from "./pool.ts";
export { compileKernels, instantiateKernels, type Kernels, quantizedBytes } from "./kernels.ts";
export { PROFILE, PROFILE_STRIDE } from "./_profile.ts";
