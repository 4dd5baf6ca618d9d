/**
 * `.pth` (or any checkpoint we read) → `.safetensors`, tensor by tensor.
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { type Checkpoint, type DType, DTYPE_SIZE } from "../lib/formats/checkpoint.ts";
import { fromFloat32, toFloat32 } from "../lib/formats/dtype.ts";
import { writeSafetensors } from "../lib/formats/safetensors_write.ts";

/**
 * Options of {@link convertToSafetensors}.
 * @example
 * ```ts
 * import  type { ConvertOptions } from "./safetensors.ts";
 * const opts: ConvertOptions = { dtype: "bf16", force: true };
 * ```
 */
export interface ConvertOptions {
  /** Cast every float tensor to this dtype (default: keep each tensor's own). */
  dtype?: "f32" | "f16" | "bf16";
  /** Replace an existing output. */
  force?: boolean;
  /** Bytes written so far of the total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/** Casts float tensor bytes chunk by chunk (bounded temporary memory). */
function castChunked(src: Uint8Array, from: DType, dst: Uint8Array, to: "F32" | "F16" | "BF16") {
  const es = DTYPE_SIZE[from], ed = DTYPE_SIZE[to];
  const n = src.length / es, CH = 1 << 20;
  for (let i = 0; i < n; i += CH) {
    const m = Math.min(CH, n - i);
    const f = toFloat32(src.subarray(i * es, (i + m) * es), from);
    dst.set(fromFloat32(f, to), i * ed);
  }
}

const FLOATS: ReadonlySet<DType> = new Set(["F32", "F16", "BF16", "F64"]);
const CAST: Record<string, "F32" | "F16" | "BF16"> = { f32: "F32", f16: "F16", bf16: "BF16" };

/**
 * Writes every tensor of `ck` to a SafeTensors file at `out` (names kept; dtypes kept, or
 * float tensors cast to `dtype`). Peak memory is about the largest tensor; the output appears
 * only when complete.
 * @example
 * ```ts
 * import  { convertToSafetensors } from "./safetensors.ts";
 * import { openCheckpoint } from "../lib/formats/open.ts";
 * const ck = await openCheckpoint("../shared/fixtures/tiny-rwkv-4v0.pth");
 * const out = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await convertToSafetensors(ck, out, { dtype: "bf16", force: true });
 * ck.close();
 * await Deno.remove(out);
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
  // One buffer for the largest tensor, reused: peak memory stays near the largest tensor
  // instead of growing with garbage the collector has not reclaimed yet.
  let largest = 0, mostElements = 0;
  for (const t of ck.tensors.values()) {
    largest = Math.max(largest, t.byteLength);
    mostElements = Math.max(mostElements, t.byteLength / DTYPE_SIZE[t.dtype]);
  }
  const raw = new Uint8Array(largest);
  let cast: Uint8Array | undefined;
  const tensors = [...ck.tensors.values()].map((t) => {
    const dtype: DType = target && FLOATS.has(t.dtype) ? target : t.dtype;
    return {
      name: t.name,
      dtype,
      shape: t.shape,
      data: async () => {
        const bytes = await ck.read(t.name, raw.subarray(0, t.byteLength));
        if (dtype === t.dtype) return bytes;
        const n = t.byteLength / DTYPE_SIZE[t.dtype];
        cast ??= new Uint8Array(mostElements * 4); // room for the widest cast (f32)
        const outBytes = cast.subarray(0, n * DTYPE_SIZE[dtype]);
        castChunked(bytes, t.dtype, outBytes, dtype as "F32" | "F16" | "BF16");
        return outBytes;
      },
    };
  });
  await writeSafetensors(out, tensors, {
    metadata,
    overwrite: options.force,
    onProgress: options.onProgress,
  });
}
