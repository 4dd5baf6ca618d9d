/**
 * For backend authors: the interface every RWKV version's forward pass runs against
 * (`docs/ARCHITECTURE.md`), the bundled backends, and the pieces a new one reuses.
 *
 * @example
 * ```ts
 * import { createReferenceModel, openCheckpoint } from "./backend.ts";
 * const model = await createReferenceModel(await openCheckpoint("model.pth"));
 * ```
 * @module
 */

export type {
  Activation,
  Engine,
  EngineItem,
  MatrixShape,
  Ops,
  Product,
  Runner,
  Segment,
  ShiftForm,
  V7TimeMixArgs,
  WeightSource,
  Wkv4Args,
} from "./lib/model/ops.ts";
export { createReferenceModel, ReferenceOps } from "./lib/backend/reference/mod.ts";
export {
  createFastModel,
  createWasmModel,
  defaultThreads,
  type FastModelOptions,
  type WasmModelOptions,
} from "./lib/backend/wasm/mod.ts";
export {
  autoBackend,
  type Backend,
  type BackendName,
  type BackendOptions,
  BACKENDS,
} from "./lib/backend/mod.ts";
export {
  type AdapterChoice,
  createWebGpuModel,
  type Gpu,
  hasHardwareGpu,
  openGpu,
  type ShaderModuleName,
  type WebGpuModelOptions,
} from "./lib/backend/webgpu/mod.ts";
export {
  type BatchItem,
  type CreateModelOptions,
  createRunner,
  describeWeights,
  type Model,
  type ModelInfo,
  newModel,
} from "./lib/model/model.ts";
export { type Piece, planPasses, runPasses } from "./lib/model/batch.ts";
export { State, type StateResidency, stateResidency } from "./lib/model/state.ts";
export type { Matrix, MatrixDesc, StorageDType } from "./lib/model/tensor.ts";
export type {
  LoadWeightsOptions,
  TensorDesc,
  WeightDType,
  Weights,
  WeightsLayout,
} from "./lib/model/weights.ts";
export type { Arena, MatrixLayout } from "./lib/model/tensor.ts";
export { detectSpec, type ModelSpec, type RwkvVersion } from "./lib/spec/spec.ts";
export { openCheckpoint } from "./lib/formats/open.ts";
export type {
  BlockQuantized,
  Checkpoint,
  CheckpointFormat,
  CheckpointLimits,
  DType,
  OpenCheckpointOptions,
  TensorInfo,
} from "./lib/formats/checkpoint.ts";
