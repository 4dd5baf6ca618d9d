/**
 * The SafeTensors writer: tensors streamed one by one (zero runs left as holes) after the JSON
 * header, into a temporary file renamed into place.
 * @module
 */

import { FormatError } from "../errors.ts";
import { DTYPE_SIZE, type TensorToWrite } from "./checkpoint.ts";
import { writeAll, writeAtomic } from "./file.ts";
import { emitTensor } from "./_emit.ts";

export type { TensorToWrite } from "./checkpoint.ts";

/**
 * Options of {@link writeSafetensors}.
 * @example
 * ```ts
 * import type { TensorToWrite } from "./checkpoint.ts";
 * declare const tensors: TensorToWrite[];
 * await writeSafetensors("out.safetensors", tensors, { metadata: { format: "pt" }, overwrite: true });
 * ```
 */
export interface WriteSafetensorsOptions {
  /** Strings stored as `__metadata__`. */
  metadata?: Record<string, string>;
  /** Replace an existing file. */
  overwrite?: boolean;
  /** Called after each tensor with bytes written so far and the total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * Writes tensors to a SafeTensors file one at a time (peak memory ≈ the largest tensor), into
 * a temporary file renamed into place; on error nothing is left.
 * @example
 * ```ts
 * await writeSafetensors("out.safetensors", [
 *   { name: "w", dtype: "F32", shape: [2], data: () => new Uint8Array(new Float32Array([1, 2]).buffer) },
 * ], { metadata: { format: "pt" } });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length) {
    header.__metadata__ = options.metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name) || t.name === "__metadata__") {
      throw new FormatError(path, t.name, "duplicate or reserved tensor name");
    }
    seen.add(t.name);
    const size = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const total = offset;
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  await writeAtomic(path, async (file) => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    await writeAll(file, len);
    await writeAll(file, json);
    const start = 8 + json.length;
    let done = 0;
    for (const t of tensors) {
      const size = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
      await emitTensor(file, path, t, start + done, size);
      done += size;
      options.onProgress?.(done, total, t.name);
    }
    await file.truncate(start + total); // the length a trailing hole did not write
  }, options.overwrite);
}
