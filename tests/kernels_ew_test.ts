/**
 * The element-wise kernels (activations, norms, RWKV-4's recurrence, RWKV-7's gates and output),
 * run through the wasm backend's own `WorkerOps` and compared with the TypeScript
 * reference of lib/backend/reference/math.ts on random data, extreme values and tails.
 */
import { productScratchBytes } from "../lib/backend/wasm/_products.ts";
import { CTRL } from "../lib/backend/wasm/_protocol.ts";
import { Region } from "../lib/backend/wasm/_region.ts";
import { WorkerOps } from "../lib/backend/wasm/_worker_ops.ts";
import { compileKernels, instantiateKernels } from "../lib/backend/wasm/kernels.ts";
import type { Activation } from "../lib/model/ops.ts";
import {
  actTS,
  addTS,
  normTS,
  shiftTS,
  sigmoidMulAddTS,
  siluMulTS,
  tmixTS,
  type V7TimeMixArrays,
  v7TimeMixTS,
  type Wkv4Arrays,
  wkv4TS,
} from "../lib/backend/reference/math.ts";
import { randomFloats } from "../testing/random.ts";
import { assert } from "./_assert.ts";

/** A one-member team over a fresh shared memory, and a way to place arrays in it. */
async function team() {
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 256, shared: true });
  const ctrl = new Int32Array(memory.buffer, 0, CTRL.size);
  const shared = new Region(memory, 1024, 4 << 20);
  const priv = new Region(memory, 5 << 20, 8 << 20);
  const c = new WorkerOps(
    instantiateKernels(await compileKernels(), memory),
    ctrl,
    0,
    1,
    shared,
    priv,
    [],
    productScratchBytes(4, 64),
  );
  /** A copy of `a` in the shared memory. */
  const put = (a: Float32Array) => {
    const v = shared.f32(a.length);
    v.set(a);
    return v;
  };
  return { c, put };
}

const randoms = (n: number, seed: number, scale = 1) => randomFloats(n, seed, -scale, scale);

/** Each value within `rel`·|expected| + `abs` of the reference (NaN only where it has NaN). */
function assertClose(
  got: Float32Array,
  want: Float32Array,
  rel: number,
  abs: number,
  what: string,
) {
  assert(got.length === want.length, `${what}: length ${got.length} ≠ ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      assert(Number.isNaN(got[i]), `${what}[${i}]: ${got[i]}, want NaN`);
      continue;
    }
    if (got[i] === want[i]) continue; // infinities included
    const tol = rel * Math.abs(want[i]) + abs;
    assert(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: ${got[i]}, want ${want[i]}`);
  }
}

Deno.test("kernels: activations match the TypeScript ones, extremes, NaN and tails included", async () => {
  const { c, put } = await team();
  const extremes = [0, -0, 1e-8, -1e-8, 30, -30, 87, -87, 89, -89, 200, -200, 1e30, -1e30, NaN];
  for (const n of [1, 3, 4, 7, 64, 131]) {
    const x = randoms(n, n, 12);
    for (let i = 0; i < Math.min(n, extremes.length); i++) x[(i * 7) % n] = extremes[i];
    for (const kind of ["tanh", "sigmoid", "relusq"] as Activation[]) {
      const want = new Float32Array(n);
      actTS(kind, x, want, n);
      const xs = put(x), out = put(new Float32Array(n + 4).fill(7)).subarray(0, n);
      c.act(kind, xs, out, n);
      // relu² is exact; tanh and σ within a few ulp (tanh absolutely near 0)
      assertClose(out, want, kind === "relusq" ? 0 : 4e-7, kind === "tanh" ? 2e-7 : 1e-30, kind);
      assert(
        out.buffer === xs.buffer && new Float32Array(out.buffer, out.byteOffset + n * 4, 4)
          .every((v) => v === 7),
        `${kind}: wrote past n = ${n}`,
      );
      c.act(kind, xs, xs, n); // in place
      assertClose(xs, want, kind === "relusq" ? 0 : 4e-7, kind === "tanh" ? 2e-7 : 1e-30, kind);
    }
    const r = randoms(n, 100 + n, 10), v = randoms(n, 200 + n, 3), x0 = randoms(n, 300 + n);
    const wantX = x0.slice();
    sigmoidMulAddTS(r, v, wantX, n);
    const xs = put(x0);
    c.sigmoidMulAdd(put(r), put(v), xs, n);
    assertClose(xs, wantX, 1e-6, 1e-7, "x += σ(r)·v");
    const wantY = x0.slice();
    siluMulTS(r, wantY, n);
    const ys = put(x0);
    c.siluMul(put(r), ys, n);
    assertClose(ys, wantY, 1e-6, 1e-7, "y *= silu(g)");
  }
});

Deno.test("kernels: token shift (both forms) and the residual add match the TypeScript", async () => {
  const { c, put } = await team();
  for (const [T, C] of [[1, 8], [5, 12]]) {
    const cur = randoms(T * C, T, 3), prev = randoms(C, 2 + T, 3), mix = randoms(C, 3 + T);
    for (const form of ["toPrev", "toCur", "diff"] as const) {
      const want = new Float32Array(T * C);
      shiftTS(cur, prev, mix, want, T, C, form);
      const out = put(new Float32Array(T * C));
      c.shift(put(cur), [{ start: 0, length: T, state: [put(prev)] }], 0, put(mix), out, C, form);
      assertClose(out, want, 1e-6, 1e-7, `shift ${form} T=${T}`);
    }
    const want = cur.slice();
    addTS(want, mix, Math.min(C, T * C));
    const x = put(cur);
    c.add(x, put(mix), Math.min(C, T * C));
    assertClose(x, want, 0, 0, `add T=${T}`);
  }
});

Deno.test("kernels: RWKV-6's data-dependent mixes and decay match tmixTS", async () => {
  const { c, put } = await team();
  const T = 3, C = 16;
  const x = randoms(T * C, 1, 2), dx = randoms(T * C, 2, 2), base = randoms(C, 3, 4);
  const off = randoms(T * C, 4, 3);
  base[0] = 30; // exp(−exp(30)) underflows: 0 for Math, e^−87.3 (clamped) here, both ≈ 0
  base[1] = -30; // ≈ 1
  for (const op of ["lerp", "decay"] as const) {
    const want = new Float32Array(T * C);
    tmixTS(op, x, dx, base, off, want, T, C);
    const out = put(new Float32Array(T * C));
    c.tmix(op, put(x), put(dx), put(base), put(off), out, T, C);
    assertClose(out, want, op === "lerp" ? 1e-6 : 4e-6, 1e-7, `tmix ${op}`);
  }
});

Deno.test("kernels: LayerNorm and GroupNorm match the TypeScript norm", async () => {
  const { c, put } = await team();
  for (const [n, groups, wrap, eps] of [[768, 3, 1, 1e-5], [64, 24, 12, 64e-5], [4, 5, 5, 1e-5]]) {
    // an offset far from zero makes a one-pass variance fail; the two-pass one holds
    const x = randoms(n * groups, n, 2).map((v) => v + 50);
    const w = randoms(n * wrap, 1 + n), b = randoms(n * wrap, 2 + n);
    const want = new Float32Array(n * groups);
    normTS(x, w, b, want, n, groups, wrap, eps);
    const out = put(new Float32Array(n * groups));
    c.norm(put(x), put(w), put(b), out, n, groups, wrap, eps);
    assertClose(out, want, 2e-5, 2e-5, `norm n=${n} groups=${groups}`);
    const xs = put(x); // in place
    c.norm(xs, put(w), put(b), xs, n, groups, wrap, eps);
    assertClose(xs, want, 2e-5, 2e-5, `norm in place n=${n}`);
  }
});

Deno.test("kernels: RWKV-4 recurrence matches wkv4TS over a prompt, state included", async () => {
  const { c, put } = await team();
  const A = 64, T = 9;
  const mk = (s: number, scale: number) => randoms(T * A, s, scale);
  const base = {
    T,
    A,
    r: mk(1, 4),
    k: mk(2, 6),
    v: mk(3, 2),
    first: randoms(A, 4, 2),
    decay: randoms(A, 5, 3).map((d) => -Math.exp(d)),
  };
  // a fresh state (pp = −1e30, as the official one) and a used one
  for (const fresh of [true, false]) {
    const aa = fresh ? new Float32Array(A) : randoms(A, 6, 3);
    const bb = fresh ? new Float32Array(A) : randoms(A, 7).map((v) => 1 + Math.abs(v));
    const pp = fresh ? new Float32Array(A).fill(-1e30) : randoms(A, 8, 5);
    const want: Wkv4Arrays = {
      ...base,
      aa: aa.slice(),
      bb: bb.slice(),
      pp: pp.slice(),
      out: new Float32Array(T * A),
    };
    wkv4TS(want);
    const state = [put(aa), put(bb), put(pp)];
    const out = put(new Float32Array(T * A));
    c.wkv4({
      A,
      r: put(base.r),
      k: put(base.k),
      v: put(base.v),
      first: put(base.first),
      decay: put(base.decay),
      aa: 0,
      bb: 1,
      pp: 2,
      out,
    }, [{ start: 0, length: T, state }]);
    const got = { out, aa: state[0], bb: state[1], pp: state[2] };
    const what = fresh ? "fresh state" : "used state";
    assertClose(got.out, want.out, 2e-5, 1e-6, `wkv4 out, ${what}`);
    assertClose(got.pp, want.pp, 1e-6, 1e-6, `wkv4 pp, ${what}`);
    assertClose(got.aa, want.aa, 2e-5, 1e-6, `wkv4 aa, ${what}`);
    assertClose(got.bb, want.bb, 2e-5, 1e-6, `wkv4 bb, ${what}`);
  }
});

Deno.test("kernels: RWKV-7 time mix (gates, recurrence, output) matches v7TimeMixTS", async () => {
  const { c, put } = await team();
  const H = 3, N = 8, C = H * N, T = 5;
  for (const layer0 of [true, false]) {
    const args = (f: (a: Float32Array) => Float32Array): V7TimeMixArrays => ({
      T,
      H,
      N,
      a0: f(randoms(C, 1)),
      al: f(randoms(T * C, 2, 3)),
      w0: f(randoms(C, 3, 2)),
      wl: f(randoms(T * C, 4, 3)),
      v0: layer0 ? undefined : f(randoms(C, 5)),
      vl: f(randoms(T * C, 6, 2)),
      v: f(randoms(T * C, 7, 2)),
      vFirst: f(randoms(T * C, 8, 2)),
      kkW: f(randoms(C, 9)),
      ka: f(randoms(C, 10)),
      k: f(randoms(T * C, 11, 3)),
      wDecay: f(new Float32Array(T * C)),
      vMix: f(new Float32Array(T * C)),
      kkN: f(new Float32Array(T * C)),
      kkA: f(new Float32Array(T * C)),
      kMod: f(new Float32Array(T * C)),
      S: f(randoms(H * N * N, 12)),
      r: f(randoms(T * C, 13)),
      y: f(new Float32Array(T * C)),
      lnw: f(randoms(C, 14)),
      lnb: f(randoms(C, 15)),
      rk: f(randoms(C, 16)),
      g: f(randoms(T * C, 17)),
      out: f(new Float32Array(T * C)),
    });
    const want = args((a) => a), got = args(put);
    v7TimeMixTS(want);
    c.v7TimeMix({ ...got, S: 0 }, [{ start: 0, length: T, state: [got.S] }]);
    const keys = ["wDecay", "vMix", "kkN", "kkA", "kMod", "vFirst", "S", "y", "out"] as const;
    for (const key of keys) {
      assertClose(
        got[key],
        want[key],
        2e-5,
        2e-6,
        `v7 time mix ${key}${layer0 ? " (layer 0)" : ""}`,
      );
    }
  }
});
