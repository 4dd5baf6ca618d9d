/**
 * Each WebGPU kernel against its TypeScript original (lib/model/ops.ts) on random data.
 */
import { openGpu } from "../lib/backend/webgpu/device.ts";
import { GpuCompute, toRowMajor } from "../lib/backend/webgpu/compute.ts";
import {
  type Activation,
  actTS,
  addTS,
  matmulRowsTS,
  normTS,
  shiftTS,
  sigmoidMulAddTS,
  siluMulTS,
  tmixTS,
  v7TimeMixTS,
  wkv4TS,
  wkv5TS,
} from "../lib/model/ops.ts";
import { Arena, finishMatrix, type Matrix, type StorageDType } from "../lib/model/tensor.ts";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import { quantizeQ4, quantizeQ8 } from "../lib/quant/mod.ts";
import { assertClose } from "./_assert.ts";
import { HAVE_WEBGPU } from "./_webgpu.ts";

/** Deterministic uniform values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  }
  return a;
}

/** A matrix of `dtype` from f32 values, in the CPU engine's layout (the oracle reads it). */
function makeMatrix(values: Float32Array, rows: number, cols: number, dtype: StorageDType): Matrix {
  const arena = new Arena(values.length * 8 + 4096);
  const d = arena.allocMatrix(rows, cols, dtype);
  const m = arena.view(d);
  if (dtype === "f32") (m.data as Float32Array).set(values);
  else if (dtype === "bf16") (m.data as Uint16Array).set(f32ToBf16(values));
  else if (dtype === "f16") (m.data as Uint16Array).set(f32ToF16(values));
  else {
    const q = dtype === "q8" ? quantizeQ8(values) : quantizeQ4(values);
    (m.data as Uint8Array).set(new Uint8Array(q.q.buffer, 0, q.q.byteLength));
    m.scales.set(q.scales);
    finishMatrix(arena.buffer, d);
  }
  return arena.view(d);
}

async function withGpu(
  fn: (c: GpuCompute) => Promise<void>,
  options: { maxPartBytes?: number; threadsPerRow?: number } = {},
) {
  const c = new GpuCompute(await openGpu({ threadsPerRow: options.threadsPerRow }), options);
  try {
    await fn(c);
  } finally {
    c.destroy();
  }
}

const gpuTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `webgpu kernels: ${name}`, ignore: !HAVE_WEBGPU, fn });

// both kernel shapes: one invocation per row (software adapters) and 32 (GPUs)
for (const tpr of [1, 32]) {
  for (const dtype of ["f32", "f16", "bf16", "q8", "q4"] as const) {
    gpuTest(
      `matmul ${dtype}, ${tpr} invocations per row, 1, 3 and 9 tokens, split = TS`,
      async () => {
        const rows = 37, cols = 96;
        const m = makeMatrix(rand(rows * cols, 7), rows, cols, dtype);
        // a tiny binding limit: the matrix is uploaded in parts of a few rows
        await withGpu(async (c) => {
          c.addMatrix(m, toRowMajor(m));
          const cases = [1, 3, 9].map((T) => ({
            T,
            x: rand(T * cols, 11 + T),
            y: c.buffer(T * rows),
          }));
          const xs = cases.map((k) => c.buffer(k.x.length));
          const emb = c.buffer(cols);
          c.seal();
          cases.forEach((k, i) => {
            c.write(xs[i], k.x);
            c.matmul(m, xs[i], k.y, k.T);
          });
          c.row(m, 29, emb);
          const got = await c.submit([...cases.map((k) => k.y), emb]);
          cases.forEach((k, i) => {
            const want = new Float32Array(k.T * rows);
            matmulRowsTS(m, k.x, want, k.T, 0, rows, new Float32Array(cols));
            assertClose(got[i], want, 2e-5, `${dtype} T=${k.T}`);
          });
          const row = new Float32Array(cols);
          for (let j = 0; j < cols; j++) {
            const e = new Float32Array(cols);
            e[j] = 1;
            const y = new Float32Array(rows);
            matmulRowsTS(m, e, y, 1, 0, rows, new Float32Array(cols));
            row[j] = y[29];
          }
          assertClose(got[cases.length], row, 0, `${dtype} row 29`);
        }, { maxPartBytes: cols * 4 * 5, threadsPerRow: tpr });
      },
    );
  }
}

/**
 * Runs `ops` on the device and on the CPU over the same inputs: `inputs` are named arrays copied
 * to both; `ops` gets an `at(name)` giving the device buffer or the CPU array.
 */
async function compare(
  inputs: Record<string, Float32Array>,
  outputs: Record<string, number>,
  ops: (c: GpuCompute | undefined, at: (name: string) => Float32Array) => void,
  tol: number,
  threadsPerRow?: number,
) {
  const cpu: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(inputs)) cpu[k] = v.slice();
  for (const [k, n] of Object.entries(outputs)) cpu[k] = new Float32Array(n);
  ops(undefined, (k) => cpu[k]);
  await withGpu(async (c) => {
    const dev: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(inputs)) dev[k] = c.buffer(v.length);
    for (const [k, n] of Object.entries(outputs)) dev[k] = c.buffer(n);
    c.seal();
    for (const [k, v] of Object.entries(inputs)) c.write(dev[k], v);
    ops(c, (k) => dev[k]);
    const names = [...Object.keys(inputs), ...Object.keys(outputs)];
    const got = await c.submit(names.map((k) => dev[k]));
    names.forEach((k, i) => assertClose(got[i], cpu[k], tol, k));
  }, { threadsPerRow });
}

for (const tpr of [1, 32]) {
  gpuTest(
    `norm (${tpr} per group), act, shift, tmix, add, sigmoidMulAdd, siluMul, copy = TS`,
    async () => {
      const T = 3, C = 40, n = T * C;
      const outs = Object.fromEntries(
        ["ln", "gn", "tanh", "sig", "relu", "s0", "s1", "s2", "lerp", "dec", "cp"].map((
          k,
        ) => [k, n]),
      );
      await compare(
        {
          x: rand(n, 1, -3, 3),
          w: rand(C, 2),
          b: rand(C, 3),
          y: rand(n, 4, -3, 3),
          prev: rand(C, 5),
          big: Float32Array.from(rand(n, 6), (v) => v * 60),
          acc: rand(n, 7),
        },
        outs,
        (c, at) => {
          const k = c;
          const norm = k ? k.norm.bind(k) : normTS;
          norm(at("x"), at("w"), at("b"), at("ln"), C, T, 1, 1e-5);
          norm(at("x"), at("w"), at("b"), at("gn"), C / 4, T * 4, 4, 64e-5);
          const act = (kind: Activation, x: string, o: string) =>
            k ? k.act(kind, at(x), at(o), n) : actTS(kind, at(x), at(o), n);
          act("tanh", "big", "tanh");
          act("sigmoid", "big", "sig");
          act("relusq", "x", "relu");
          (["toPrev", "toCur", "diff"] as const).forEach((f, i) =>
            (k ? k.shift.bind(k) : shiftTS)(at("x"), at("prev"), at("w"), at(`s${i}`), T, C, f)
          );
          const tm = k ? k.tmix.bind(k) : tmixTS;
          tm("lerp", at("x"), at("y"), at("w"), at("y"), at("lerp"), T, C);
          tm("decay", at("y"), at("y"), at("b"), at("y"), at("dec"), T, C);
          (k ? k.add.bind(k) : addTS)(at("acc"), at("y"), n);
          (k ? k.sigmoidMulAdd.bind(k) : sigmoidMulAddTS)(at("x"), at("y"), at("acc"), n);
          (k ? k.siluMul.bind(k) : siluMulTS)(at("x"), at("acc"), n);
          // the token shift's state update: a copy of the last token's row
          at("cp").set(at("ln").subarray((T - 1) * C, T * C), 5);
        },
        2e-6,
        tpr,
      );
    },
  );
}

gpuTest("wkv4 over 5 tokens = TS", async () => {
  const T = 5, A = 70;
  const pp = rand(A, 9, -2, 2);
  pp.fill(-1e30, 0, 10); // a fresh state's pp
  await compare(
    {
      r: rand(T * A, 1, -3, 3),
      k: rand(T * A, 2, -3, 3),
      v: rand(T * A, 3, -3, 3),
      first: rand(A, 4),
      decay: rand(A, 5, -2, -0.01),
      aa: rand(A, 6),
      bb: rand(A, 7, 0.1, 2),
      pp,
    },
    { out: T * A },
    (c, at) => {
      const a = {
        T,
        A,
        r: at("r"),
        k: at("k"),
        v: at("v"),
        first: at("first"),
        decay: at("decay"),
        aa: at("aa"),
        bb: at("bb"),
        pp: at("pp"),
        out: at("out"),
      };
      c ? c.wkv4(a) : wkv4TS(a);
    },
    2e-6,
  );
});

for (const perToken of [false, true]) {
  gpuTest(`wkv5 over 4 tokens (decay per ${perToken ? "token" : "channel"}) = TS`, async () => {
    const T = 4, H = 3, N = 8, C = H * N;
    await compare(
      {
        S: rand(H * N * N, 1),
        r: rand(T * C, 2),
        k: rand(T * C, 3),
        v: rand(T * C, 4),
        w: rand(perToken ? T * C : C, 5, 0.5, 1),
        u: rand(C, 6),
      },
      { y: T * C },
      (c, at) => {
        const args = [at("S"), at("r"), at("k"), at("v"), at("w"), at("u"), at("y")] as const;
        c ? c.wkv5(...args, H, N, T, perToken) : wkv5TS(...args, H, N, T, perToken);
      },
      2e-6,
    );
  });
}

for (const layer0 of [true, false]) {
  gpuTest(
    `RWKV-7 time mix over 3 tokens (${layer0 ? "layer 0" : "later layer"}) = TS`,
    async () => {
      const T = 3, H = 2, N = 16, C = H * N;
      const ins: Record<string, Float32Array> = {};
      let seed = 1;
      for (const k of ["a0", "w0", "v0", "kkW", "ka", "lnw", "lnb", "rk"]) ins[k] = rand(C, seed++);
      for (const k of ["al", "wl", "vl", "v", "k", "r", "g"]) ins[k] = rand(T * C, seed++);
      ins.S = rand(H * N * N, seed++);
      ins.vFirst = rand(T * C, seed++);
      const outs = Object.fromEntries(
        ["wDecay", "vMix", "kkN", "kkA", "kMod", "y", "out"].map((k) => [k, T * C]),
      );
      await compare(ins, outs, (c, at) => {
        const a = {
          T,
          H,
          N,
          a0: at("a0"),
          al: at("al"),
          w0: at("w0"),
          wl: at("wl"),
          v0: layer0 ? undefined : at("v0"),
          vl: at("vl"),
          v: at("v"),
          vFirst: at("vFirst"),
          kkW: at("kkW"),
          ka: at("ka"),
          k: at("k"),
          wDecay: at("wDecay"),
          vMix: at("vMix"),
          kkN: at("kkN"),
          kkA: at("kkA"),
          kMod: at("kMod"),
          S: at("S"),
          r: at("r"),
          y: at("y"),
          lnw: at("lnw"),
          lnb: at("lnb"),
          rk: at("rk"),
          g: at("g"),
          out: at("out"),
        };
        c ? c.v7TimeMix(a) : v7TimeMixTS(a);
      }, 5e-6);
    },
  );
}
