/**
 * The WebAssembly kernels of the wasm backend (lib/backend/wasm): rebuilt from source byte for byte, and
 * equal to the TypeScript reference `matmulRowsTS` on random data for every storage dtype,
 * token count (the four-token prompt path and the one-token path) and row range.
 */
import { buildKernels, KERNEL_FILES } from "../lib/backend/wasm/build.ts";
import {
  compileKernels,
  instantiateKernels,
  quantizedBytes,
  relaxedDotMode,
} from "../lib/backend/wasm/kernels.ts";
import {
  decodeRowGrouped,
  finishMatrix,
  KERNEL_LAYOUT,
  paddedRows,
} from "../lib/backend/wasm/layout.ts";
import { matmulRowsTS } from "../lib/backend/reference/math.ts";
import {
  type Matrix,
  matrixBytes,
  type MatrixDesc,
  type StorageDType,
  viewMatrix,
} from "../lib/model/tensor.ts";
import { dequantizeQ4, dequantizeQ8, quantizeQ4, quantizeQ8 } from "../lib/quant/mod.ts";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import { makeRng } from "../lib/sample.ts";
import { assert, assertEquals, maxAbsDiff } from "./_assert.ts";

for (const build of ["single", "split"] as const) {
  const file = KERNEL_FILES[build];
  Deno.test(`kernels: lib/backend/wasm/${file} is exactly what its source builds to`, async () => {
    const built = await buildKernels(build);
    const committed = await Deno.readFile(new URL(`../lib/backend/wasm/${file}`, import.meta.url));
    assertEquals(built, committed, "run `deno task build:kernels` and commit the result");
  });
}

/** A bump allocator over a fresh shared memory, as the engine's. */
function allocator(start = 64): (n: number) => number {
  let top = start;
  return (n: number) => {
    const o = top;
    top += Math.ceil((n + 16) / 64) * 64;
    return o;
  };
}

/** The single build over a fresh shared memory. */
async function setup() {
  const memory = new WebAssembly.Memory({ initial: 512, maximum: 65536, shared: true });
  const k = instantiateKernels(await compileKernels(), memory);
  const alloc = allocator();
  const dot = relaxedDotMode(k, memory, alloc(64));
  if (dot) k.q8_dot(dot);
  return { k, buf: memory.buffer, alloc, dot };
}

/** Stores W in `dtype` in the memory and returns its Matrix. */
function place(
  buf: ArrayBufferLike,
  alloc: (n: number) => number,
  W: Float32Array,
  rows: number,
  cols: number,
  dtype: StorageDType,
): Matrix {
  let data: ArrayBufferView = W, scales: Float32Array = new Float32Array(0);
  if (dtype === "bf16") data = f32ToBf16(W);
  else if (dtype === "f16") data = f32ToF16(W);
  else if (dtype === "q8") ({ q: data, scales } = quantizeQ8(W));
  else if (dtype === "q4") ({ q: data, scales } = quantizeQ4(W));
  const b = matrixBytes(rows, cols, dtype, KERNEL_LAYOUT);
  const w = alloc(b.data), s = alloc(b.scales);
  new Uint8Array(buf, w, data.byteLength).set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
  new Float32Array(buf, s, scales.length).set(scales);
  const d: MatrixDesc = {
    rows,
    cols,
    dtype,
    offset: w,
    scaleOffset: s,
    storedRows: paddedRows(rows, dtype),
  };
  finishMatrix(buf, d);
  // views over the arena, as the engine's matrices
  return viewMatrix(buf, d);
}

/** Runs the kernel for `m` over rows [r0, r1) into a fresh NaN-filled y; returns y. */
function runKernel(
  setupResult: Awaited<ReturnType<typeof setup>>,
  m: Matrix,
  X: Float32Array,
  T: number,
  r0: number,
  r1: number,
  scratch = true,
): Float32Array {
  const { k, buf, alloc } = setupResult;
  const x = alloc(X.byteLength), y = alloc(T * m.rows * 4);
  new Float32Array(buf, x, X.length).set(X);
  const out = new Float32Array(buf, y, T * m.rows).fill(NaN);
  if (m.dtype === "q8" || m.dtype === "q4") {
    const xq = alloc(quantizedBytes(T * m.cols));
    k.quantize(x, xq, T * m.cols, m.dtype === "q8" ? 1 : 0);
    k[`matmul_${m.dtype}`](m.offset, m.scaleOffset, xq, y, m.rows, m.cols, T, r0, r1);
  } else {
    // bf16/f16 decode through a scratch (as the engine passes it) or without one
    const s = (m.dtype === "bf16" || m.dtype === "f16") && scratch ? alloc(m.cols * 4) : 0;
    if (s && T === 1) k.prepare_x(x, s, m.cols, m.dtype === "f16" ? 2 ** 56 : 1);
    k[`matmul_${m.dtype}`](m.offset, s, x, y, m.rows, m.cols, T, r0, r1);
  }
  return out;
}

/**
 * Checks a kernel's output against the reference. f32/bf16/f16: the weights are the same
 * numbers, only the summation order (and fused multiply-adds) differ: within float rounding.
 * q8/q4: the kernels quantize the activations per block of 32 (q8 to ±8191, q4 to ±127), so
 * each activation is off by at most half a step, `amax_b / (2·L)`: every output must lie
 * within Σ_b Σ_i∈b |w_i| · amax_b / (2·L) of the reference (plus float rounding). That bound
 * is rigorous, so the check is tight on any data.
 */
function check(
  m: Matrix,
  X: Float32Array,
  T: number,
  out: Float32Array,
  ref: Float32Array,
  what: string,
): void {
  const { rows, cols, dtype } = m;
  if (dtype !== "q8" && dtype !== "q4") {
    const scale = Math.max(1, ...ref.map(Math.abs));
    const d = maxAbsDiff(out, ref), tol = 2e-6 * Math.sqrt(cols) * scale;
    assert(d <= tol, `${what}: max diff ${d} > ${tol}`);
    return;
  }
  const L = dtype === "q8" ? 8191 : 127, w = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    decodeRowGrouped(m, r, w);
    for (let t = 0; t < T; t++) {
      let bound = 0, abs = 0;
      for (let b = 0; b < cols; b += 32) {
        let amax = 0, wsum = 0;
        for (let i = b; i < b + 32; i++) {
          amax = Math.max(amax, Math.abs(X[t * cols + i]));
          wsum += Math.abs(w[i]);
          abs += Math.abs(w[i] * X[t * cols + i]);
        }
        bound += (wsum * amax) / (2 * L);
      }
      const d = Math.abs(out[t * rows + r] - ref[t * rows + r]);
      const tol = bound * 1.001 + 1e-6 * abs;
      assert(d <= tol, `${what} row ${r} token ${t}: diff ${d} > bound ${tol}`);
    }
  }
}

Deno.test("kernels: every dtype matches the TypeScript reference", async () => {
  const env = await setup();
  const rng = makeRng(1);
  const shapes = [
    [37, 96, 1],
    [64, 256, 3],
    [8, 1024, 5],
    [5, 160, 2],
    [33, 64, 4],
    [19, 512, 9],
    [20, 1056, 4], // q4: two bands of 8 rows and a lone group, in prompt mode
    [6, 8224, 1], // bf16/f16 decoding long rows four at a time, the last two rows alone
    // q4 rows past Q4_PANEL_COLS, stored as column panels of 1760 and 1696 columns: decoding,
    // and a prompt of four tokens in bands and two more alone, each panel adding to the last
    [21, 5216, 1],
    [21, 5216, 6],
    [70, 2624, 5], // two blocks of rows (64, then 8 with 6 of the matrix) × two panels
  ];
  for (const [rows, cols, T] of shapes) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: T * cols }, () => rng() * 2 - 1);
    for (const dtype of ["f32", "bf16", "f16", "q8", "q4"] as StorageDType[]) {
      const m = place(env.buf, env.alloc, W, rows, cols, dtype);
      const ref = new Float32Array(T * rows);
      matmulRowsTS(m, X, ref, T, 0, rows, new Float32Array(cols), decodeRowGrouped);
      const out = runKernel(env, m, X, T, 0, rows);
      check(m, X, T, out, ref, `${dtype} ${rows}×${cols}×${T}`);
      if (dtype === "bf16" || dtype === "f16") {
        const plain = runKernel(env, m, X, T, 0, rows, false);
        check(m, X, T, plain, ref, `${dtype} without scratch ${rows}×${cols}×${T}`);
      }
    }
  }
});

Deno.test("kernels: q8's fused 8-bit paths and its int16 paths give the same bits", async () => {
  // With q8_fused 3, several tokens go through the fused dot on the activations' signed planes
  // when two whole row groups are left, and one token (decoding) through it for the whole
  // groups of the range's quarters; with 0 everything goes through int16 products: the same
  // integers. The fused dot reads the flipped weights as unsigned bytes on x86 (relaxed SIMD
  // leaves it to the implementation; the kernels are told which by relaxedDotMode).
  const env = await setup();
  // x86 reads it as unsigned (VNNI's vpdpbusd, SSSE3's pmaddubsw): a probe finding neither way
  // there would leave the fused paths off (slower), so it is a failure
  if (Deno.build.arch === "x86_64") {
    assert(env.dot !== 0, "the relaxed dot reads neither way on x86");
  }
  if (env.dot === 0) {
    console.warn("the relaxed dot reads neither way here: the fused q8 paths stay off, not tested");
    return;
  }
  const rng = makeRng(3);
  const cases = [
    [64, 256, 3],
    [20, 1056, 4],
    [19, 512, 9],
    [8, 64, 2],
    [64, 256, 1],
    [19, 512, 1],
    [45, 96, 1],
  ];
  for (const [rows, cols, T] of cases) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    W.fill(0.5, 0, cols); // a row of one value: every weight of it at ±127
    const X = Float32Array.from({ length: T * cols }, () => (rng() * 2 - 1) * 4);
    X.fill(-3, 0, 32); // a block of one value: every activation of it at ±8191
    const m = place(env.buf, env.alloc, W, rows, cols, "q8");
    const out: Float32Array[] = [];
    for (const on of [3, 0]) {
      env.k.q8_fused(on);
      out.push(runKernel(env, m, X, T, 0, rows).slice());
    }
    env.k.q8_fused(1);
    for (let i = 0; i < out[0].length; i++) {
      assert(Number.isFinite(out[0][i]), `${rows}×${cols}×${T}: y[${i}] = ${out[0][i]}`);
      assertEquals(out[0][i], out[1][i], `${rows}×${cols}×${T}: y[${i}]`);
    }
  }
});

Deno.test("kernels: float kernels handle tails (cols not a multiple of 8 or 16)", async () => {
  const env = await setup();
  const rng = makeRng(2);
  for (const [rows, cols, T] of [[7, 100, 1], [7, 100, 6], [3, 13, 4], [4, 5, 1]]) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: T * cols }, () => rng() * 2 - 1);
    for (const dtype of ["f32", "bf16", "f16"] as StorageDType[]) {
      const m = place(env.buf, env.alloc, W, rows, cols, dtype);
      const ref = new Float32Array(T * rows);
      matmulRowsTS(m, X, ref, T, 0, rows, new Float32Array(cols), decodeRowGrouped);
      const out = runKernel(env, m, X, T, 0, rows);
      check(m, X, T, out, ref, `${dtype} ${rows}×${cols}×${T}`);
      if (dtype === "bf16" || dtype === "f16") {
        const plain = runKernel(env, m, X, T, 0, rows, false);
        check(m, X, T, plain, ref, `${dtype} without scratch ${rows}×${cols}×${T}`);
      }
    }
  }
});

Deno.test("kernels: a row range writes exactly its rows, the same values as the whole", async () => {
  const env = await setup();
  const rng = makeRng(3);
  // 130 × 2624: q4 in pieces (blocks of 64 rows × two panels), ranges cutting blocks
  for (const [rows, cols, T, r0, r1] of [[48, 128, 5, 16, 32], [130, 2624, 5, 60, 132]]) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: T * cols }, () => rng() * 2 - 1);
    for (const dtype of ["f32", "bf16", "f16", "q8", "q4"] as StorageDType[]) {
      const m = place(env.buf, env.alloc, W, rows, cols, dtype);
      const whole = runKernel(env, m, X, T, 0, rows);
      const end = Math.min(r1, rows), part = runKernel(env, m, X, T, r0, end);
      for (let t = 0; t < T; t++) {
        for (let r = 0; r < rows; r++) {
          const v = part[t * rows + r], what = `${dtype} ${rows}×${cols} token ${t} row ${r}`;
          if (r >= r0 && r < end) assertEquals(v, whole[t * rows + r], what);
          else assert(Number.isNaN(v), `${what}: outside the range, written`);
        }
      }
    }
  }
});

Deno.test("kernels: decoding (T = 1) gives the same bits however the rows are split", async () => {
  // The decode paths take rows in pairs (float), fours and pairs of groups (q8) or whole bands of two
  // groups (q4: 45 and 61 rows end in a band's partial group, 27 in a lone partial group; 77
  // rows of 4160 columns and 29 of 10240: long rows, as an FFN's value matrix has, which q4
  // stores as column panels)
  // where they can and alone at the edges of a range: a member's share must not change a
  // single bit of a row, so 1, 2 or 3 Workers decode identically.
  const env = await setup();
  const rng = makeRng(4);
  for (
    const [rows, cols] of [[45, 256], [61, 96], [8, 1024], [27, 128], [11, 8224], [77, 4160], [
      29,
      10240,
    ]]
  ) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: cols }, () => rng() * 2 - 1);
    // q8 twice: the int16 decode path, then the fused one (where the machine's dot allows it)
    const kinds = ["f32", "bf16", "f16", "q8", "q8 fused", "q4"].filter((d) =>
      env.dot || d !== "q8 fused"
    );
    for (const kind of kinds) {
      const dtype = kind.split(" ")[0] as StorageDType;
      env.k.q8_fused(kind === "q8 fused" ? 3 : 1);
      const m = place(env.buf, env.alloc, W, rows, cols, dtype);
      const whole = runKernel(env, m, X, 1, 0, rows);
      const ref = new Float32Array(rows);
      matmulRowsTS(m, X, ref, 1, 0, rows, new Float32Array(cols), decodeRowGrouped);
      check(m, X, 1, whole, ref, `${dtype} ${rows}×${cols}×1`);
      const step = dtype === "q8" || dtype === "q4" ? 4 : 1; // ranges start on a row group
      for (const cuts of [[1], [3], [5, 9], [7, 13, 29]]) {
        const edges = [0, ...cuts.map((c) => Math.min(c * step, rows)), rows];
        const split = new Float32Array(rows);
        for (let i = 0; i + 1 < edges.length; i++) {
          if (edges[i] >= edges[i + 1]) continue;
          const part = runKernel(env, m, X, 1, edges[i], edges[i + 1]);
          split.set(part.subarray(edges[i], edges[i + 1]), edges[i]);
        }
        assertEquals(split, whole, `${kind} ${rows}×${cols} split at ${edges}`);
      }
    }
    env.k.q8_fused(1);
  }
});

Deno.test("kernels: f16 conversion is exact for every finite half value", async () => {
  const env = await setup();
  // one row per 16 halves, x = one-hot: y[r] = W[r, c] exactly; infinities and NaNs (which
  // the loader refuses to store as f16) replaced by 0
  const cols = 16, rows = 65536 / cols;
  const halves = Uint16Array.from({ length: 65536 }, (_, i) => (i & 0x7c00) === 0x7c00 ? 0 : i);
  const w = env.alloc(halves.byteLength);
  new Uint16Array(env.buf, w, halves.length).set(halves);
  const m: Matrix = {
    rows,
    cols,
    dtype: "f16",
    offset: w,
    scaleOffset: 0,
    storedRows: rows,
    data: new Uint16Array(env.buf, w, halves.length),
    scales: new Float32Array(0),
  };
  const ref = new Float32Array(cols);
  // decoding (one token) through the scratch (halves widened without a rescale, x scaled by
  // 2^56) and without it
  for (const scratch of [true, false]) {
    for (let c = 0; c < cols; c++) {
      const X = new Float32Array(cols);
      X[c] = 1;
      const out = runKernel(env, m, X, 1, 0, rows, scratch);
      for (let r = 0; r < rows; r++) {
        decodeRowGrouped(m, r, ref);
        // one term is the value itself, the others ±0
        let want = 0;
        for (let j = 0; j < cols; j++) want += ref[j] * X[j];
        assertEquals(out[r] + 0, want + 0, `half ${r * cols + c}${scratch ? "" : " (no scratch)"}`);
      }
    }
  }
});

Deno.test("kernels: q8/q4 rows grouped by finishMatrix decode to the quantizer's own values", async () => {
  const env = await setup();
  const rng = makeRng(4);
  // 13 × 5216 and 141 × 2624: q4 in column panels (see Q4_PANEL_COLS), the second in three
  // blocks of rows
  for (const [rows, cols] of [[37, 96], [4, 32], [6, 64], [13, 5216], [141, 2624]]) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const q8 = quantizeQ8(W), q4 = quantizeQ4(W);
    const want = { q8: dequantizeQ8(q8.q, q8.scales), q4: dequantizeQ4(q4.q, q4.scales) };
    for (const dtype of ["q8", "q4"] as const) {
      const m = place(env.buf, env.alloc, W, rows, cols, dtype);
      const row = new Float32Array(cols);
      for (let r = 0; r < rows; r++) {
        decodeRowGrouped(m, r, row);
        assertEquals(row, want[dtype].subarray(r * cols, (r + 1) * cols), `${dtype} row ${r}`);
      }
    }
  }
});

Deno.test("kernels: the build's @inline expansion keeps call semantics", async () => {
  const { inlineWat } = await import("../lib/backend/wasm/_inline.ts");
  const wabt = await (await import("wabt")).default();
  // $twice reads its parameter twice and has a local: the argument (which bumps a global)
  // must run exactly once, and nested helpers expand too
  const src = `(module
    (global $n (mut i32) (i32.const 0))
    (func $bump (result i32) (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n))
    ;; @inline
    (func $twice (param $a i32) (result i32) (local $t i32)
      (local.set $t (i32.add (local.get $a) (local.get $a))) (local.get $t))
    ;; @inline
    (func $quad (param $a i32) (result i32) (call $twice (call $twice (local.get $a))))
    (func (export "f") (result i32)
      (i32.add (call $quad (call $bump)) (i32.mul (call $twice (call $bump)) (i32.const 100)))))`;
  const text = inlineWat(src);
  assert(!/call \$(twice|quad)/.test(text), "helpers expanded");
  const mod = wabt.parseWat("t.wat", text);
  mod.resolveNames();
  const { buffer } = mod.toBinary({});
  mod.destroy();
  const instance = await WebAssembly.instantiate(new WebAssembly.Module(new Uint8Array(buffer)));
  const f = instance.exports.f as () => number;
  assertEquals(f(), 4 * 1 + 2 * 2 * 100);
  let refused = "";
  try {
    inlineWat("(module ;; @inline\n(func $r (result i32) (return (i32.const 1))))");
  } catch (e) {
    refused = (e as Error).message;
  }
  assert(/uses return/.test(refused), `return refused: ${refused}`);
});

Deno.test("kernels: quantize gives each block's integers, scale (and q4's sum) as defined; a NaN or an infinity makes its block's scale non-finite", async () => {
  const { k, buf, alloc } = await setup();
  const n = 32 * 40, x = alloc(n * 4), xq = alloc(quantizedBytes(n));
  const v = new Float32Array(buf, x, n);
  let z = 7;
  for (let i = 0; i < n; i++) {
    z = (z * 1103515245 + 12345) >>> 0;
    v[i] = ((z / 2 ** 32) - 0.5) * 2 ** ((i >> 5) % 9 - 4); // blocks of many magnitudes
  }
  v.fill(0, 32, 64); // an all-zero block
  for (let i = 64; i < 96; i++) v[i] = (i - 80) * 0.5; // exact halves: ties round to even
  v.fill(1e-39, 192, 224); // a block whose scale is below the normal range: zeros
  v[230] = 3e38; // two huge finite values in one lane: a finite scale
  v[234] = 3e38;
  v[100] = NaN;
  v[140] = Infinity;
  v[170] = -Infinity;
  for (const mode of [0, 1] as const) {
    k.quantize(x, xq, n, mode);
    // mode 0: int8, scales, sums × −8; mode 1: int16, scales
    const lim = mode ? 8191 : 127, nb = n / 32;
    const q = mode ? new Int16Array(buf, xq, n) : new Int8Array(buf, xq, n);
    const d = new Float32Array(buf, xq + n * (mode + 1), nb);
    const sums = new Int32Array(buf, xq + n + nb * 4, nb);
    for (let b = 0; b < nb; b++) {
      const block = v.subarray(b * 32, b * 32 + 32);
      if (block.some((a) => !Number.isFinite(a))) {
        // then every row's product with this block is NaN or infinite, never a finite lie
        assert(!Number.isFinite(d[b]), `mode ${mode} block ${b}: scale ${d[b]} is finite`);
        continue;
      }
      const scale = Math.fround(Math.max(...block.map(Math.abs)) / lim);
      assertEquals(d[b], scale, `mode ${mode} block ${b}: scale`);
      const inv = scale >= 2 ** -126 ? Math.fround(1 / scale) : 0;
      let sum = 0;
      for (let i = 0; i < 32; i++) {
        const p = Math.fround(block[i] * inv), r = Math.round(p);
        const want = (Math.abs(p % 1) === 0.5 && r % 2 ? r - 1 : r) | 0; // half to even
        sum += want;
        assertEquals(q[b * 32 + i], want, `mode ${mode} value ${b * 32 + i}`);
      }
      if (!mode) assertEquals(sums[b], (-8 * sum) | 0, `mode ${mode} block ${b}: sum`);
      else {
        // the signed planes q = 128·h + l, |h|, |l| ≤ 64, then −128·Σq
        const h = new Int8Array(buf, xq + 2 * n + nb * 4, n),
          l = new Int8Array(buf, xq + 3 * n + nb * 4, n);
        for (let i = b * 32; i < b * 32 + 32; i++) {
          assertEquals(128 * h[i] + l[i], q[i], `mode 1 planes of value ${i}`);
          assert(
            Math.abs(h[i]) <= 64 && Math.abs(l[i]) <= 64,
            `mode 1 planes of value ${i}: ${h[i]}, ${l[i]}`,
          );
        }
        assertEquals(
          new Int32Array(buf, xq + 4 * n + nb * 4, nb)[b],
          (-128 * sum) | 0,
          `mode 1 block ${b}: sum`,
        );
      }
    }
  }
});

Deno.test("kernels: the split build reads weights from their own memory, to the same bits", async () => {
  // Weights at the same offsets in both setups; the split build's activation memory holds NaNs
  // where its weights memory holds them, so a weight read from the wrong memory shows.
  const single = await setup();
  const act = new WebAssembly.Memory({ initial: 512, maximum: 65536, shared: true });
  const wts = new WebAssembly.Memory({ initial: 512, maximum: 65536, shared: true });
  new Float32Array(act.buffer).fill(NaN);
  const split = {
    k: instantiateKernels(await compileKernels("split"), act, wts),
    buf: act.buffer,
    alloc: allocator(16 << 20),
    dot: single.dot,
  };
  if (single.dot) split.k.q8_dot(single.dot);
  single.alloc = allocator(16 << 20);
  const placeW = allocator(), placeS = allocator();
  const rng = makeRng(3);
  for (
    const [rows, cols, T] of [
      [37, 96, 1],
      [64, 256, 3],
      [20, 1056, 4],
      [7, 100, 6],
      [4, 5, 1],
      [70, 2624, 5], // q4 in pieces: two blocks of rows × two panels
      [21, 5216, 1],
    ]
  ) {
    const W = Float32Array.from({ length: rows * cols }, () => rng() - 0.5);
    const X = Float32Array.from({ length: T * cols }, () => rng() * 2 - 1);
    for (const dtype of ["f32", "bf16", "f16", "q8", "q4"] as StorageDType[]) {
      if ((dtype === "q8" || dtype === "q4") && cols % 32) continue;
      const a = place(single.buf, placeS, W, rows, cols, dtype);
      const b = place(wts.buffer, placeW, W, rows, cols, dtype);
      assertEquals(a.offset, b.offset);
      // q8 through its int16 and (where the machine's dot allows) its fused products
      for (const flags of dtype === "q8" && single.dot ? [1, 3] : [1]) {
        single.k.q8_fused(flags);
        split.k.q8_fused(flags);
        for (const t of [1, T]) {
          const want = runKernel(single, a, X, t, 0, rows);
          const got = runKernel(split, b, X, t, 0, rows);
          assertEquals(
            new Uint32Array(got.buffer, got.byteOffset, got.length),
            new Uint32Array(want.buffer, want.byteOffset, want.length),
            `${dtype} ${rows}×${cols}×${t} (q8_fused ${flags})`,
          );
        }
      }
      single.k.q8_fused(1);
      split.k.q8_fused(1);
    }
  }
  const n = 1 << 16;
  new Uint8Array(wts.buffer, 0, n).fill(1);
  assertEquals(split.k.read_stream(0, n), Math.imul(n / 16, 0x01010101)); // the weights' bytes
});

Deno.test("kernels: the split build refuses a source that mixes weight and activation pointers", async () => {
  const { parseWat, inlineTree } = await import("../lib/backend/wasm/_inline.ts");
  const { weightMemoryTree, weightLoads } = await import("../lib/backend/wasm/_memories.ts");
  const wrap = (body: string) =>
    inlineTree(parseWat(`(module (import "env" "memory" (memory 1 65536 shared))
      ;; @weights $w
      (func (export "f") (param $w i32) (param $x i32) (result i32) (local $p i32) ${body}))`));
  // derived pointers and helpers' parameters follow the weights; a loaded value does not
  const ok = weightMemoryTree(wrap(`(local.set $p (i32.add (local.get $w) (i32.const 8)))
    (i32.add (i32.load (local.get $p)) (i32.load (i32.load (local.get $x))))`));
  assertEquals([...weightLoads(ok).values()], [1]);
  for (
    const bad of [
      `(local.set $p (local.get $w)) (local.set $p (local.get $x)) (i32.load (local.get $p))`,
      `(i32.store (local.get $w) (i32.const 1)) (i32.const 0)`,
    ]
  ) {
    let threw = false;
    try {
      weightMemoryTree(wrap(bad));
    } catch {
      threw = true;
    }
    assert(threw, `not refused: ${bad}`);
  }
});
