/**
 * The Worker backend: Workers over shared memory running WebAssembly SIMD kernels.
 * @module
 */

export { createFastModel, defaultThreads, type FastModelOptions } from "./pool.ts";
export { compileKernels, instantiateKernels, type Kernels, quantizedBytes } from "./kernels.ts";
export { PROFILE, PROFILE_STRIDE } from "./_profile.ts";
