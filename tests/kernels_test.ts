/**
 * The WebAssembly kernels: rebuilt from source byte for byte, and equal to the TypeScript
 * reference `matmulRowsTS` on random data.
 */
import { buildKernels } from "../lib/fast/build.ts";
import { compileKernels, instantiateKernels } from "../lib/fast/kernels.ts";
import { matmulRowsTS } from "../lib/model/ops.ts";
import { fillCorrections, type Matrix, type StorageDType } from "../lib/model/tensor.ts";
import { quantizeQ4, quantizeQ8 } from "../lib/quant/mod.ts";
import { f32ToBf16 } from "../lib/formats/dtype.ts";
import { makeRng } from "../lib/sample.ts";
import { assert, assertEquals, maxAbsDiff } from "./_assert.ts";

Deno.test("kernels: kernels.wasm is exactly what its source builds to", async () => {
  const built = await buildKernels();
  const committed = await Deno.readFile(new URL("../lib/fast/kernels.wasm", import.meta.url));
  assertEquals(built, committed, "run `deno task build:kernels` and commit the result");
});

Deno.test("kernels: every dtype matches the TypeScript reference", async () => {
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
  const k = instantiateKernels(await compileKernels(), memory);
  const buf = memory.buffer;
  let top = 64;
  const alloc = (n: number) => {
    const o = top;
    top += Math.ceil(n / 64) * 64;
    return o;
  };
  const rng = makeRng(1);
  for (const [rows, cols, T] of [[37, 96, 1], [64, 256, 3], [8, 1024, 5], [5, 160, 2]]) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: T * cols }, () => rng() * 2 - 1);
    const x = alloc(X.byteLength), y = alloc(T * rows * 4);
    new Float32Array(buf, x, X.length).set(X);
    const xq = alloc(T * cols), xs = alloc((T * cols) / 32 * 4);
    for (const dtype of ["f32", "bf16", "q8", "q4"] as StorageDType[]) {
      let data: Matrix["data"], scales: Float32Array = new Float32Array(0);
      if (dtype === "f32") data = W;
      else if (dtype === "bf16") data = f32ToBf16(W);
      else if (dtype === "q8") ({ q: data, scales } = quantizeQ8(W));
      else ({ q: data, scales } = quantizeQ4(W));
      const w = alloc(data.byteLength), s = alloc(scales.byteLength * 2 + 64);
      new Uint8Array(buf, w, data.byteLength).set(new Uint8Array(data.buffer));
      new Float32Array(buf, s, scales.length).set(scales);
      const m: Matrix = { rows, cols, dtype, offset: w, scaleOffset: s, data, scales };
      fillCorrections(buf, m);
      const ref = new Float32Array(T * rows);
      matmulRowsTS(m, X, ref, T, 0, rows, new Float32Array(cols));
      const out = new Float32Array(buf, y, T * rows);
      out.fill(NaN);
      if (dtype === "f32") k.mm_f32(w, x, y, rows, cols, T, 0, rows);
      else if (dtype === "bf16") k.mm_bf16(w, x, y, rows, cols, T, 0, rows);
      else {
        k.quant_x(x, xq, xs, T * cols);
        (dtype === "q8" ? k.mm_q8 : k.mm_q4)(w, s, xq, xs, y, rows, cols, T, 0, rows);
      }
      const scale = Math.max(...ref.map(Math.abs));
      // f32/bf16: only summation order differs. q8/q4: activations are quantized to 7 bits
      // per block of 32 (relative error ≤ 1/126 per value).
      const tol = dtype === "f32" || dtype === "bf16" ? 1e-5 * Math.sqrt(cols) : 0.02 * scale;
      const d = maxAbsDiff(out, ref);
      assert(d <= tol, `${dtype} ${rows}×${cols}×${T}: max diff ${d} > ${tol}`);
    }
  }
});
