/**
 * The WebGPU backend: WGSL compute shaders (in this folder, loaded relative to this module) over
 * the backend interface of `lib/model/ops.ts`.
 * @module
 */

export { createWebGpuModel, type WebGpuModelOptions } from "./engine.ts";
export {
  type AdapterChoice,
  type Gpu,
  hasHardwareGpu,
  openGpu,
  type ShaderModuleName,
} from "./device.ts";
