/**
 * The WebGPU backend's handles: a buffer is a range of the one storage buffer, a matrix its
 * parts (rows split to fit a binding); and the file layout matrices are uploaded in.
 * @module
 */

import type { MatrixShape } from "../../model/ops.ts";
import { floatToHalf, halfToFloat } from "../../formats/dtype.ts";
import type { Matrix, StorageDType } from "../../model/tensor.ts";

/**
 * A buffer of the WebGPU backend: `length` f32 values at element `at` of the device's `buf`.
 * @example
 * ```ts
 * declare const ops: import("./ops.ts").GpuOps;
 * const x: GpuBuf = ops.buffer(64); // { at: 1024, length: 64 }
 * ```
 */
export interface GpuBuf {
  /** Element offset in `buf`. */
  readonly at: number;
  /** Values. */
  readonly length: number;
}

/** One part of a matrix (rows [row0, row0 + rows)) and its bind group. */
export interface MatrixPart {
  row0: number;
  rows: number;
  bind: GPUBindGroup | undefined;
  buffers: GPUBuffer[];
}

/**
 * A matrix on the device, in the quantized file's layout (see {@link RowMajorMatrix}).
 * @example
 * ```ts
 * declare const ops: import("./ops.ts").GpuOps, data: Uint8Array, scales: Uint16Array, rows: number, cols: number;
 * const m: GpuMatrix = ops.addMatrix({ dtype: "q8", rows, cols, data, scales });
 * ```
 */
export interface GpuMatrix extends MatrixShape {
  /** Storage type. */
  readonly dtype: StorageDType;
  /** Bytes on the device (values and scales). */
  readonly bytes: number;
  /** q8/q4 block scales in bf16 (else f16). */
  readonly bf16Scales: boolean;
  /** @internal Row ranges, each in its own bindings. */
  readonly parts: readonly MatrixPart[];
}

/**
 * A matrix as the file stores it: row-major values (q8 int8, q4 two per byte in ggml's Q4_0
 * order, f16/bf16 16-bit words, f32) and, for q8/q4, one f16 scale per block of 32 values.
 * @example
 * ```ts
 * const bytes = new Uint8Array(4 * 64 * 2);
 * const m: RowMajorMatrix = { dtype: "bf16", rows: 4, cols: 64, data: bytes };
 * ```
 */
export interface RowMajorMatrix extends MatrixShape {
  /** Storage type. */
  readonly dtype: StorageDType;
  /** The values, rows one after another. */
  readonly data: Uint8Array;
  /** q8/q4: the 16-bit block scales, [rows, cols/32]. */
  readonly scales?: Uint16Array;
  /** q8/q4: their type (`bf16` from format version 3, `f16` before). */
  readonly scaleType?: "f16" | "bf16";
}

/**
 * A row-major matrix of loaded weights (`PLAIN_LAYOUT`) in the file's layout: the same values,
 * block scales as 16-bit words, bf16 when they all are bf16 values (format version 3, and
 * quantization on load), else f16 (versions 1 and 2): exact either way.
 * @example
 * ```ts
 * import type { WeightSource } from "../../model/ops.ts";
 * import type { Matrix } from "../../model/tensor.ts";
 * declare const ops: import("./ops.ts").GpuOps, weights: WeightSource<Float32Array, Matrix>;
 * const m = ops.addMatrix(fileLayout(weights.mat("head.weight")));
 * ```
 */
export function fileLayout(m: Matrix): RowMajorMatrix {
  const { rows, cols, dtype } = m;
  const n = rows * cols;
  const bytes = dtype === "f32" ? n * 4 : dtype === "q8" ? n : dtype === "q4" ? n / 2 : n * 2;
  const data = new Uint8Array(m.data.buffer, m.data.byteOffset, bytes);
  if (dtype !== "q8" && dtype !== "q4") return { dtype, rows, cols, data };
  const f32 = m.scales.subarray(0, n / 32);
  const bits = new Uint32Array(f32.length);
  bits.set(new Uint32Array(f32.buffer, f32.byteOffset, f32.length));
  if (bits.every((b) => (b & 0xffff) === 0)) {
    return {
      dtype,
      rows,
      cols,
      data,
      scales: Uint16Array.from(bits, (b) => b >>> 16),
      scaleType: "bf16",
    };
  }
  const scales = Uint16Array.from(f32, floatToHalf);
  scales.forEach((h, i) => {
    if (halfToFloat(h) !== f32[i]) {
      throw new Error(`block scale ${f32[i]} is neither a bf16 nor an f16 value`);
    }
  });
  return { dtype, rows, cols, data, scales, scaleType: "f16" };
}

/** Bytes of one stored row. */
export function rowBytesOf(dtype: StorageDType, cols: number): number {
  return dtype === "f32" ? cols * 4 : dtype === "q8" ? cols : dtype === "q4" ? cols / 2 : cols * 2;
}
