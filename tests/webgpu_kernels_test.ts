/**
 * Each WebGPU kernel against the reference backend (plain TypeScript, `lib/backend/reference/math.ts`) on
 * random data, through the same `Ops` calls.
 */
import { openGpu } from "../lib/backend/webgpu/device.ts";
import { fileLayout, type GpuBuf, GpuOps } from "../lib/backend/webgpu/ops.ts";
import { ReferenceOps } from "../lib/backend/reference/mod.ts";
import type { MatrixShape, Ops, Segment } from "../lib/model/ops.ts";
import { Arena, type Matrix, type StorageDType } from "../lib/model/tensor.ts";
import { f32ToBf16, f32ToF16, floatToHalf, halfToFloat } from "../lib/formats/dtype.ts";
import { quantizeQ4, quantizeQ8 } from "../lib/quant/mod.ts";
import { assert, assertClose } from "./_assert.ts";
import { webgpuTest } from "./_webgpu.ts";
import { randomFloats } from "../testing/random.ts";

/**
 * A row-major matrix of `dtype` from f32 values (as loadWeights stores it); `f16Scales`: q8/q4
 * block scales moved to nearby f16 values that are not bf16 ones (as format versions 1–2 store).
 */
function makeMatrix(
  values: Float32Array,
  rows: number,
  cols: number,
  dtype: StorageDType,
  f16Scales = false,
): Matrix {
  const arena = new Arena(values.length * 8 + 4096);
  const m = arena.view(arena.allocMatrix(rows, cols, dtype));
  if (dtype === "f32") (m.data as Float32Array).set(values);
  else if (dtype === "bf16") (m.data as Uint16Array).set(f32ToBf16(values));
  else if (dtype === "f16") (m.data as Uint16Array).set(f32ToF16(values));
  else {
    const q = dtype === "q8" ? quantizeQ8(values) : quantizeQ4(values);
    (m.data as Uint8Array).set(new Uint8Array(q.q.buffer, 0, q.q.byteLength));
    m.scales.set(q.scales);
    if (f16Scales) {
      m.scales.forEach((d, i) => m.scales[i] = halfToFloat(floatToHalf(d * 1.0123)));
      assert(m.scales.some((d) => new Uint32Array(new Float32Array([d]).buffer)[0] & 0xffff));
    }
  }
  return m;
}

/** What a case runs, once on each backend: `at` gives a named buffer, `mat` a matrix. */
type Body = <B, M extends MatrixShape>(
  ops: Ops<B, M>,
  at: (name: string) => B,
  segs: readonly Segment<B>[],
  mat: (name: string) => M,
) => void;

interface Case {
  /** Named inputs (copied to both backends) and outputs (zeroed, sizes). */
  inputs: Record<string, Float32Array>;
  outputs: Record<string, number>;
  /** Segments: length and initial state tensors. */
  segments?: { length: number; state: Float32Array[] }[];
  matrices?: Record<string, Matrix>;
  tol: number;
  threadsPerRow?: number;
  maxPartBytes?: number;
}

/** Runs `body` on the reference backend and on the GPU and compares every buffer and state. */
async function compare(k: Case, body: Body): Promise<void> {
  const segments = k.segments ?? [{ length: 1, state: [new Float32Array(1)] }];
  let T = 0;
  const spans = segments.map((s) => {
    const span = { start: T, length: s.length, init: s.state };
    T += s.length;
    return span;
  });
  // reference
  const cpu: Record<string, Float32Array> = {};
  for (const [n, v] of Object.entries(k.inputs)) cpu[n] = v.slice();
  for (const [n, len] of Object.entries(k.outputs)) cpu[n] = new Float32Array(len);
  const cpuSegs = spans.map((s) => ({ ...s, state: s.init.map((t) => t.slice()) }));
  body(new ReferenceOps(), (n) => cpu[n], cpuSegs, (n) => k.matrices![n]);
  // device
  const ops = new GpuOps(await openGpu({ threadsPerRow: k.threadsPerRow }), Math.max(T, 1), {
    maxPartBytes: k.maxPartBytes,
  });
  try {
    const dev: Record<string, GpuBuf> = {};
    for (const [n, v] of Object.entries(k.inputs)) dev[n] = ops.buffer(v.length);
    for (const [n, len] of Object.entries(k.outputs)) dev[n] = ops.buffer(len);
    const gpuSegs = spans.map((s) => ({ ...s, state: s.init.map((t) => ops.buffer(t.length)) }));
    const mats = Object.fromEntries(
      Object.entries(k.matrices ?? {}).map(([n, m]) => [n, ops.addMatrix(fileLayout(m))]),
    );
    ops.seal();
    for (const [n, v] of Object.entries(k.inputs)) ops.write(dev[n], v);
    gpuSegs.forEach((s, i) => s.state.forEach((b, j) => ops.write(b, spans[i].init[j])));
    ops.beginPass(new Array(T).fill(0), gpuSegs);
    body(ops, (n) => dev[n], gpuSegs, (n) => mats[n]);
    const names = Object.keys(dev);
    const got = await ops.submit([...names.map((n) => dev[n]), ...gpuSegs.flatMap((s) => s.state)]);
    names.forEach((n, i) => assertClose(got[i], cpu[n], k.tol, n));
    let i = names.length;
    cpuSegs.forEach((s, si) =>
      s.state.forEach((t, j) => assertClose(got[i++], t, k.tol, `segment ${si} state ${j}`))
    );
  } finally {
    ops.destroy();
  }
}

const gpuTest = (name: string, fn: () => Promise<void>) =>
  webgpuTest(import.meta.url, { name: `webgpu kernels: ${name}`, fn });

// both kernel shapes: one invocation per row (software adapters) and 32 (GPUs)
for (const tpr of [1, 32]) {
  for (const dtype of ["f32", "f16", "bf16", "q8", "q4", "q8 (f16 scales)", "q4 (f16 scales)"]) {
    gpuTest(`matmul ${dtype}, ${tpr} per row, 1/3/9 tokens, split, and embed = TS`, async () => {
      const rows = 37, cols = 96;
      const [type, f16] = [dtype.split(" ")[0] as StorageDType, dtype.includes("f16 scales")];
      const m = makeMatrix(randomFloats(rows * cols, 7), rows, cols, type, f16);
      const inputs: Record<string, Float32Array> = {};
      const outputs: Record<string, number> = { emb: 3 * cols };
      for (const T of [1, 3, 9]) {
        inputs[`x${T}`] = randomFloats(T * cols, 11 + T);
        outputs[`y${T}`] = T * rows;
      }
      const tokens = [29, 0, 36]; // rows in the first, a middle and the last part
      await compare({
        inputs,
        outputs,
        segments: [{ length: 9, state: [new Float32Array(1)] }],
        matrices: { m },
        // a tiny binding limit: the matrix is uploaded in parts of five rows
        maxPartBytes: cols * 4 * 5,
        threadsPerRow: tpr,
        tol: 2e-5,
      }, (ops, at, _segs, mat) => {
        for (const T of [1, 3, 9]) ops.matmul(mat("m"), at(`x${T}`), at(`y${T}`), T);
        ops.embed(mat("m"), tokens, at("emb"));
      });
    });
  }
}

for (const tpr of [1, 32]) {
  gpuTest(`norm (${tpr} per group), act, tmix, columns, add, σ·add, silu = TS`, async () => {
    const T = 3, C = 40, n = T * C;
    const outputs = Object.fromEntries(
      ["ln", "gn", "tanh", "sig", "relu", "lerp", "dec", "cols"].map((k) => [k, n]),
    );
    await compare({
      inputs: {
        x: randomFloats(n, 1, -3, 3),
        w: randomFloats(C, 2),
        b: randomFloats(C, 3),
        y: randomFloats(n, 4, -3, 3),
        big: Float32Array.from(randomFloats(n, 6), (v) => v * 60),
        acc: randomFloats(n, 7),
      },
      outputs,
      segments: [{ length: T, state: [new Float32Array(1)] }],
      threadsPerRow: tpr,
      tol: 2e-6,
    }, (ops, at) => {
      ops.norm(at("x"), at("w"), at("b"), at("ln"), C, T, 1, 1e-5);
      ops.norm(at("x"), at("w"), at("b"), at("gn"), C / 4, T * 4, 4, 64e-5);
      ops.act("tanh", at("big"), at("tanh"), n);
      ops.act("sigmoid", at("big"), at("sig"), n);
      ops.act("relusq", at("x"), at("relu"), n);
      ops.tmix("lerp", at("x"), at("y"), at("w"), at("y"), at("lerp"), T, C);
      ops.tmix("decay", at("y"), at("y"), at("b"), at("y"), at("dec"), T, C);
      ops.columns(at("x"), C, 8, 16, at("cols"), T);
      ops.add(at("acc"), at("y"), n);
      ops.sigmoidMulAdd(at("x"), at("y"), at("acc"), n);
      ops.siluMul(at("x"), at("acc"), n);
    });
  });
}

/** Three sequences of 4, 1 and 2 tokens, each with its own state tensors of `sizes`. */
function threeSegments(sizes: number[], seed: number, lo = -1, hi = 1) {
  return [4, 1, 2].map((length, i) => ({
    length,
    state: sizes.map((n, j) => randomFloats(n, seed + 10 * i + j, lo, hi)),
  }));
}

gpuTest("token shift, keepLast and lastRows over three segments = TS", async () => {
  const C = 24, T = 7;
  await compare({
    inputs: { x: randomFloats(T * C, 1), mix: randomFloats(C, 2) },
    outputs: { s0: T * C, s1: T * C, s2: T * C, last: 3 * C },
    segments: threeSegments([5, C, C], 3),
    // measured 1.2e-7 (toPrev): the GPU fuses c + (p − c)·m into one multiply-add
    tol: 5e-7,
  }, (ops, at, segs) => {
    (["toPrev", "toCur", "diff"] as const).forEach((f, i) =>
      ops.shift(at("x"), segs, 1, at("mix"), at(`s${i}`), C, f)
    );
    ops.keepLast(at("x"), segs, 2, C);
    ops.lastRows(at("x"), segs, at("last"), C);
  });
});

gpuTest("wkv4 over three segments = TS", async () => {
  const A = 70, T = 7;
  const segments = threeSegments([A, A, A], 9);
  segments[0].state[2].fill(-1e30); // a fresh state's pp
  // bb, the denominator's state, is a positive sum
  for (const seg of segments) {
    seg.state[1] = Float32Array.from(seg.state[1], (v) => 0.1 + Math.abs(v));
  }
  await compare({
    inputs: {
      r: randomFloats(T * A, 1, -3, 3),
      k: randomFloats(T * A, 2, -3, 3),
      v: randomFloats(T * A, 3, -3, 3),
      first: randomFloats(A, 4),
      decay: randomFloats(A, 5, -2, -0.01),
    },
    outputs: { out: T * A },
    segments,
    tol: 2e-6,
  }, (ops, at, segs) => {
    const [r, k, v, first, decay, out] = ["r", "k", "v", "first", "decay", "out"].map(at);
    ops.wkv4({ A, r, k, v, first, decay, aa: 0, bb: 1, pp: 2, out }, segs);
  });
});

for (const perToken of [false, true]) {
  gpuTest(`wkv5 over three segments (decay per ${perToken ? "token" : "channel"}) = TS`, () => {
    const T = 7, H = 3, N = 8, C = H * N;
    return compare({
      inputs: {
        r: randomFloats(T * C, 2),
        k: randomFloats(T * C, 3),
        v: randomFloats(T * C, 4),
        w: randomFloats(perToken ? T * C : C, 5, 0.5, 1),
        u: randomFloats(C, 6),
      },
      outputs: { y: T * C },
      segments: threeSegments([C, H * N * N], 20),
      tol: 2e-6,
    }, (ops, at, segs) => {
      const [r, k, v, w, u, y] = ["r", "k", "v", "w", "u", "y"].map(at);
      ops.wkv5(1, r, k, v, w, u, y, H, N, segs, perToken);
    });
  });
}

for (const layer0 of [true, false]) {
  gpuTest(`RWKV-7 time mix over three segments (${layer0 ? "layer 0" : "later"}) = TS`, () => {
    const T = 7, H = 2, N = 16, C = H * N;
    const inputs: Record<string, Float32Array> = {};
    let seed = 1;
    for (const k of ["a0", "w0", "v0", "kkW", "ka", "lnw", "lnb", "rk"]) {
      inputs[k] = randomFloats(C, seed++);
    }
    for (const k of ["al", "wl", "vl", "v", "k", "r", "g", "vFirst"]) {
      inputs[k] = randomFloats(T * C, seed++);
    }
    const outputs = Object.fromEntries(
      ["wDecay", "vMix", "kkN", "kkA", "kMod", "y", "out"].map((k) => [k, T * C]),
    );
    return compare({
      inputs,
      outputs,
      segments: threeSegments([C, H * N * N], 40),
      tol: 5e-6,
    }, (ops, at, segs) => {
      const b = (k: string) => at(k);
      ops.v7TimeMix(
        {
          H,
          N,
          ...Object.fromEntries(
            [...Object.keys(inputs), ...Object.keys(outputs)].map((k) => [k, b(k)]),
          ) as Record<string, ReturnType<typeof b>>,
          v0: layer0 ? undefined : b("v0"),
          S: 1,
        } as Parameters<typeof ops.v7TimeMix>[0],
        segs,
      );
    });
  });
}
