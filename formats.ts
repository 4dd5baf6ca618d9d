/**
 * Checkpoint formats without Python: read PyTorch `.pth` (zip and legacy, through a safe pickle
 * subset), SafeTensors, GGUF (llama.cpp) and rwkv.cpp `.bin`; write SafeTensors and `.pth`; convert between float
 * types.
 *
 * @example
 * ```ts
 * import { openCheckpoint } from "./formats.ts";
 * const ck = await openCheckpoint("model.pth");
 * for (const [name, t] of ck.tensors) console.log(name, t.dtype, t.shape);
 * ck.close();
 * ```
 * @module
 */

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
export {
  openSafetensors,
  type SafetensorsCheckpoint,
  type SafetensorsTensorInfo,
} from "./lib/formats/safetensors.ts";
export {
  type TensorToWrite,
  writeSafetensors,
  type WriteSafetensorsOptions,
} from "./lib/formats/safetensors_write.ts";
export { openRwkvCpp } from "./lib/formats/rwkvcpp.ts";
export {
  type GgufEntry,
  type GgufTensorToWrite,
  writeGguf,
  type WriteGgufOptions,
} from "./lib/formats/gguf_write.ts";
export {
  GGUF_VALUE,
  type GgufFile,
  type GgufTensor,
  type GgufValue,
  openGguf,
  readGguf,
} from "./lib/formats/gguf.ts";
export { writePth, type WritePthOptions } from "./lib/formats/pth_write.ts";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "./lib/formats/dtype.ts";
export { DEFAULT_LIMITS } from "./lib/formats/checkpoint.ts";
