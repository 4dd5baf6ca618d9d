/**
 * `.pth` (or any checkpoint we read) → `.safetensors`, tensor by tensor.
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import type { Checkpoint, DType } from "../lib/formats/checkpoint.ts";
import { fromFloat32, toFloat32 } from "../lib/formats/dtype.ts";
import { writeSafetensors } from "../lib/formats/safetensors.ts";

/** Options of {@link convertToSafetensors}. */
export interface ConvertOptions {
  /** Cast every float tensor to this dtype (default: keep each tensor's own). */
  dtype?: "f32" | "f16" | "bf16";
  /** Replace an existing output. */
  force?: boolean;
  /** Bytes written so far of the total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

const FLOATS: ReadonlySet<DType> = new Set(["F32", "F16", "BF16", "F64"]);
const CAST: Record<string, "F32" | "F16" | "BF16"> = { f32: "F32", f16: "F16", bf16: "BF16" };

/**
 * Writes every tensor of `ck` to a SafeTensors file at `out` (names kept; dtypes kept, or
 * float tensors cast to `dtype`). Peak memory is about the largest tensor; the output appears
 * only when complete.
 * @example
 * ```ts ignore
 * const ck = await openCheckpoint("model.pth");
 * await convertToSafetensors(ck, "model.safetensors", { dtype: "bf16" });
 * ```
 */
export async function convertToSafetensors(
  ck: Checkpoint,
  out: string,
  options: ConvertOptions = {},
): Promise<void> {
  if (options.dtype && !CAST[options.dtype]) {
    throw new UsageError(`--dtype must be f32, f16 or bf16, not ${options.dtype}`);
  }
  const target = options.dtype ? CAST[options.dtype] : undefined;
  const metadata: Record<string, string> = {
    format: "pt",
    source: ck.path.split("/").pop() ?? ck.path,
  };
  const tensors = [...ck.tensors.values()].map((t) => {
    const dtype: DType = target && FLOATS.has(t.dtype) ? target : t.dtype;
    return {
      name: t.name,
      dtype,
      shape: t.shape,
      data: async () => {
        const raw = await ck.read(t.name);
        if (dtype === t.dtype) return raw;
        return fromFloat32(toFloat32(raw, t.dtype), dtype as "F32" | "F16" | "BF16");
      },
    };
  });
  await writeSafetensors(out, tensors, {
    metadata,
    overwrite: options.force,
    onProgress: options.onProgress,
  });
}
