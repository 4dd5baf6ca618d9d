/**
 * `deno bench` of each engine kernel on one thread: a 1024 × 4096 matrix (the shape of an
 * RWKV 0.4B channel-mix product) at every storage dtype, one token (decode, memory bound) and
 * 64 tokens (prompt mode, compute bound).
 *
 *   deno bench -A bench/kernels_bench.ts
 *
 * @module
 */

import { compileKernels, instantiateKernels, quantizedBytes } from "../lib/backend/wasm/kernels.ts";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import { finishMatrix, KERNEL_LAYOUT, paddedRows } from "../lib/backend/wasm/layout.ts";
import { matrixBytes, type MatrixDesc, type StorageDType } from "../lib/model/tensor.ts";
import { quantizeQ4, quantizeQ8 } from "../lib/quant/mod.ts";
import { makeRng } from "../lib/sample.ts";
import { runProduct } from "./_roofline.ts";

const rows = 1024, cols = 4096, maxT = 64;
const memory = new WebAssembly.Memory({ initial: 2048, maximum: 65536, shared: true });
const k = instantiateKernels(await compileKernels(), memory);
const buf = memory.buffer;
let top = 64;
const alloc = (n: number) => {
  const o = top;
  top += Math.ceil(n / 64) * 64;
  return o;
};
const rng = makeRng(1);
const W = Float32Array.from({ length: rows * cols }, () => (rng() - 0.5) / 32);
const x = alloc(maxT * cols * 4),
  y = alloc(maxT * rows * 4),
  xq = alloc(quantizedBytes(maxT * cols));
new Float32Array(buf, x, maxT * cols).set(Float32Array.from({ length: maxT * cols }, rng));

function place(dtype: StorageDType): MatrixDesc {
  let data: ArrayBufferView = W, scales: Float32Array = new Float32Array(0);
  if (dtype === "bf16") data = f32ToBf16(W);
  else if (dtype === "f16") data = f32ToF16(W);
  else if (dtype === "q8") ({ q: data, scales } = quantizeQ8(W));
  else if (dtype === "q4") ({ q: data, scales } = quantizeQ4(W));
  const b = matrixBytes(rows, cols, dtype, KERNEL_LAYOUT);
  const offset = alloc(b.data), scaleOffset = alloc(b.scales + 64);
  new Uint8Array(buf, offset, data.byteLength).set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
  new Float32Array(buf, scaleOffset, scales.length).set(scales);
  const d = { rows, cols, dtype, offset, scaleOffset, storedRows: paddedRows(rows, dtype) };
  finishMatrix(buf, d);
  return d;
}

for (const dtype of ["f32", "bf16", "f16", "q8", "q4"] as StorageDType[]) {
  const m = place(dtype);
  for (const T of [1, maxT]) {
    Deno.bench({
      name: `matmul_${dtype} ${rows}×${cols}, T=${T}`,
      group: `T=${T}`,
      baseline: dtype === "f32",
      fn() {
        runProduct(k, dtype, m.offset, m.scaleOffset, x, xq, y, rows, cols, T);
      },
    });
  }
}
