/**
 * Writes a random-weight RWKV model with the real shapes (names and shapes of the official
 * checkpoints), with the project's own SafeTensors writer, for benchmarks at real sizes.
 * Magnitudes are sane (matrices ~ N(0, 1/cols), decays in the trained range): no NaN, no
 * denormals, so speed is that of a trained model.
 *
 *   deno run -A bench/make_model.ts --version 7 --layers 24 --embd 1024 --vocab 65536 --out /tmp/r7-0.4b.safetensors
 *
 * Presets: --preset 4-169m | 4-430m | 6-1.6b | 7-0.1b | 7-0.4b | 7-1.5b (or --version 4|6|7
 * --layers L --embd C --vocab V, and --head-size N for RWKV-6/7: 64 unless given)
 * @module
 */

import { parseArgs } from "node:util";
import { f32ToBf16 } from "../lib/formats/dtype.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors.ts";
import { makeRng } from "../lib/sample.ts";
import { progressBar } from "../lib/progress.ts";

const PRESETS: Record<string, [string, number, number, number]> = {
  "4-169m": ["4", 12, 768, 50277],
  "4-430m": ["4", 24, 1024, 50277],
  "6-1.6b": ["6", 24, 2048, 65536],
  "7-0.1b": ["7", 12, 768, 65536],
  "7-0.4b": ["7", 24, 1024, 65536],
  "7-1.5b": ["7", 24, 2048, 65536],
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string" },
    version: { type: "string", default: "7" },
    layers: { type: "string", default: "12" },
    embd: { type: "string", default: "768" },
    vocab: { type: "string", default: "65536" },
    dtype: { type: "string", default: "bf16" },
    out: { type: "string" },
    seed: { type: "string", default: "1" },
    "head-size": { type: "string", default: "64" },
  },
});
let [version, L, C, V] = [
  values.version,
  Number(values.layers),
  Number(values.embd),
  Number(values.vocab),
];
if (values.preset) {
  if (!PRESETS[values.preset]) throw new Error(`unknown preset ${values.preset}`);
  [version, L, C, V] = PRESETS[values.preset];
}
if (!values.out) throw new Error("--out FILE is required");
const N = Number(values["head-size"]), H = C / N, F = 4 * C;
if (version !== "4" && !(Number.isInteger(H) && H >= 1)) {
  throw new Error(`--embd ${C} is not a multiple of --head-size ${N}`);
}
const dtype = values.dtype === "f32" ? "F32" : "BF16";
const rng = makeRng(Number(values.seed));
const gauss = () => {
  const u = Math.max(rng(), 1e-12), v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
};

const tensors: TensorToWrite[] = [];
function add(name: string, shape: number[], gen: (i: number) => number) {
  tensors.push({
    name,
    dtype,
    shape,
    data: () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = gen(i);
      return dtype === "F32" ? new Uint8Array(f.buffer) : new Uint8Array(f32ToBf16(f).buffer);
    },
  });
}
const mat = (name: string, rows: number, cols: number) => {
  const s = 1 / Math.sqrt(cols);
  add(name, [rows, cols], () => gauss() * s);
};
const vec = (name: string, shape: number[], base: number, spread: number) =>
  add(name, shape, () => base + (rng() - 0.5) * spread);

add("emb.weight", [V, C], () => gauss() * 0.1);
for (let i = 0; i < L; i++) {
  const b = `blocks.${i}.`, a = `${b}att.`, f = `${b}ffn.`;
  if (i === 0) {
    vec(b + "ln0.weight", [C], 1, 0.2);
    vec(b + "ln0.bias", [C], 0, 0.1);
  }
  for (const n of ["ln1", "ln2"]) {
    vec(`${b}${n}.weight`, [C], 1, 0.2);
    vec(`${b}${n}.bias`, [C], 0, 0.1);
  }
  if (version === "4") {
    for (const n of ["k", "v", "r"]) vec(`${a}time_mix_${n}`, [1, 1, C], 0.5, 0.8);
    vec(a + "time_decay", [C], -2, 4);
    vec(a + "time_first", [C], 0, 1);
    for (const n of ["key", "value", "receptance", "output"]) mat(`${a}${n}.weight`, C, C);
    for (const n of ["k", "r"]) vec(`${f}time_mix_${n}`, [1, 1, C], 0.5, 0.8);
    mat(f + "key.weight", F, C);
    mat(f + "receptance.weight", C, C);
    mat(f + "value.weight", C, F);
  } else if (version === "6") {
    // RWKV-6 "Finch" (x060): data-dependent token shift and decay, FFN of 3.5·C
    const Dm = C < 4096 ? 32 : 64, Dd = C < 4096 ? 64 : 128, F6 = Math.floor((C * 3.5) / 32) * 32;
    for (const n of ["x", "w", "k", "v", "r", "g"]) vec(`${a}time_maa_${n}`, [1, 1, C], 0.5, 0.8);
    add(a + "time_maa_w1", [C, 5 * Dm], () => gauss() / Math.sqrt(C));
    add(a + "time_maa_w2", [5, Dm, C], () => gauss() * 0.1 / Math.sqrt(Dm));
    vec(a + "time_decay", [1, 1, C], -2, 4);
    add(a + "time_decay_w1", [C, Dd], () => gauss() / Math.sqrt(C));
    add(a + "time_decay_w2", [Dd, C], () => gauss() * 0.1 / Math.sqrt(Dd));
    vec(a + "time_faaaa", [H, N], 0, 1);
    for (const n of ["receptance", "key", "value", "output", "gate"]) mat(`${a}${n}.weight`, C, C);
    vec(a + "ln_x.weight", [C], 1, 0.2);
    vec(a + "ln_x.bias", [C], 0, 0.1);
    for (const n of ["k", "r"]) vec(`${f}time_maa_${n}`, [1, 1, C], 0.5, 0.8);
    mat(f + "key.weight", F6, C);
    mat(f + "receptance.weight", C, C);
    mat(f + "value.weight", C, F6);
  } else {
    const D = C <= 1024 ? 64 : 96, Dv = C <= 1024 ? 32 : 64, Dg = C <= 1024 ? 128 : 256;
    for (const n of ["r", "w", "k", "v", "a", "g"]) vec(`${a}x_${n}`, [1, 1, C], 0.5, 0.8);
    vec(a + "w0", [1, 1, C], -1, 2);
    mat(a + "w1", C, D);
    mat(a + "w2", D, C);
    vec(a + "a0", [1, 1, C], 0, 1);
    mat(a + "a1", C, D);
    mat(a + "a2", D, C);
    if (i > 0) {
      vec(a + "v0", [1, 1, C], 0, 1);
      mat(a + "v1", C, Dv);
      mat(a + "v2", Dv, C);
    }
    mat(a + "g1", C, Dg);
    mat(a + "g2", Dg, C);
    vec(a + "k_k", [1, 1, C], 0.8, 0.4);
    vec(a + "k_a", [1, 1, C], 0.8, 0.4);
    vec(a + "r_k", [H, N], 0, 0.5);
    for (const n of ["receptance", "key", "value", "output"]) mat(`${a}${n}.weight`, C, C);
    vec(a + "ln_x.weight", [C], 1, 0.2);
    vec(a + "ln_x.bias", [C], 0, 0.1);
    vec(f + "x_k", [1, 1, C], 0.5, 0.8);
    mat(f + "key.weight", F, C);
    mat(f + "value.weight", C, F);
  }
}
vec("ln_out.weight", [C], 1, 0.2);
vec("ln_out.bias", [C], 0, 0.1);
mat("head.weight", V, C);

const bar = progressBar(`writing ${values.out}`, "bytes");
await writeSafetensors(values.out, tensors, {
  overwrite: true,
  metadata: { note: "random weights of the real shape, for benchmarks", rwkv_version: version },
  onProgress: (d, t) => bar.update(d, t),
});
bar.finish(`RWKV-${version} ${L}×${C}, vocab ${V}, ${dtype}`);
