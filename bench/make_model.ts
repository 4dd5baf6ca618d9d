/**
 * Writes a random-weight RWKV model with the real shapes (names and shapes of the official
 * checkpoints), with the project's own writers, for benchmarks at real sizes. Magnitudes are sane
 * (matrices ~ N(0, 1/cols), decays in the trained range): no NaN, no denormals, so speed is that
 * of a trained model. `--fill zeros` makes every matrix zero instead (vectors stay random), written
 * as holes in a sparse file: the 13.3B shape's 26.5 GB of bf16 take no disk, and zero matrices
 * decode at the speed of trained ones.
 *
 *   deno run -A bench/make_model.ts --version 7 --layers 24 --embd 1024 --vocab 65536 --out /tmp/r7-0.4b.safetensors
 *   deno run -A bench/make_model.ts --preset 7-13.3b --out /tmp/7-13.3b.pth          # sparse, bf16
 *   deno run -A bench/make_model.ts --preset 7-2.9b --dtype q8 --out /tmp/7-2.9b-q8.safetensors
 *
 * Presets: --preset 4-169m | 4-430m | 6-1.6b | 7-0.1b | 7-0.4b | 7-1.5b (random), and the RWKV-7
 * "G1" shapes 7-2.9b (32 × 2560) | 7-7.2b (32 × 4096) | 7-13.3b (61 × 4096) (zeros unless
 * `--fill random`); or --version 4|6|7 --layers L --embd C --vocab V, and --head-size N for
 * RWKV-6/7 (64 unless given). RWKV-7's low-rank sizes are the official code's functions of C.
 * The output's container follows its name (`.pth`: a PyTorch zip, ZIP64 past 4 GiB; else
 * SafeTensors); `--dtype bf16 | f16 | f32` stores every tensor so, `q8 | q4` writes our quantized
 * file (lib/quant) from the bf16 weights.
 * @module
 */

import { parseArgs } from "node:util";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import type { Checkpoint, DType, TensorInfo } from "../lib/formats/checkpoint.ts";
import { DTYPE_SIZE } from "../lib/formats/checkpoint.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { writePth } from "../lib/formats/pth_write.ts";
import { writeQuantized } from "../lib/quant/write.ts";
import { makeRng } from "../lib/sample.ts";
import { progressBar } from "../lib/progress.ts";

/** version, layers, embd, vocab, and whether matrices are zeros by default. */
const PRESETS: Record<string, [string, number, number, number, boolean]> = {
  "4-169m": ["4", 12, 768, 50277, false],
  "4-430m": ["4", 24, 1024, 50277, false],
  "6-1.6b": ["6", 24, 2048, 65536, false],
  "7-0.1b": ["7", 12, 768, 65536, false],
  "7-0.4b": ["7", 24, 1024, 65536, false],
  "7-1.5b": ["7", 24, 2048, 65536, false],
  "7-2.9b": ["7", 32, 2560, 65536, true],
  "7-7.2b": ["7", 32, 4096, 65536, true],
  "7-13.3b": ["7", 61, 4096, 65536, true],
};

/** Python's round(): halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * RWKV-7's low-rank sizes as BlinkDL's RWKV-7 training code computes them from the width C
 * ("suggestion" sizes: multiples of 32, at least 32; the 0.4B model's C = 1024 keeps a gate
 * of 128): decay and in-context rate 1.8·√C, value residual 1.3·√C, gate 0.6·C^0.8.
 */
export function rwkv7LoraDims(C: number): { w: number; a: number; v: number; g: number } {
  const size = (x: number) => Math.max(32, roundHalfEven(x / 32) * 32);
  const w = size(1.8 * Math.sqrt(C));
  return { w, a: w, v: size(1.3 * Math.sqrt(C)), g: C === 1024 ? 128 : size(0.6 * C ** 0.8) };
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string" },
    version: { type: "string", default: "7" },
    layers: { type: "string", default: "12" },
    embd: { type: "string", default: "768" },
    vocab: { type: "string", default: "65536" },
    dtype: { type: "string", default: "bf16" },
    fill: { type: "string" },
    out: { type: "string" },
    seed: { type: "string", default: "1" },
    "head-size": { type: "string", default: "64" },
  },
});
let [version, L, C, V, zerosByDefault] = [
  values.version,
  Number(values.layers),
  Number(values.embd),
  Number(values.vocab),
  false,
];
if (values.preset) {
  if (!PRESETS[values.preset]) throw new Error(`unknown preset ${values.preset}`);
  [version, L, C, V, zerosByDefault] = PRESETS[values.preset];
}
if (!values.out) throw new Error("--out FILE is required");
const fill = values.fill ?? (zerosByDefault ? "zeros" : "random");
if (fill !== "zeros" && fill !== "random") throw new Error("--fill is random or zeros");
const zeros = fill === "zeros";
if (!["bf16", "f16", "f32", "q8", "q4"].includes(values.dtype)) {
  throw new Error("--dtype is bf16, f16, f32, q8 or q4");
}
const quant = values.dtype === "q8" || values.dtype === "q4" ? values.dtype : undefined;
const N = Number(values["head-size"]), H = C / N, F = 4 * C;
if (version !== "4" && !(Number.isInteger(H) && H >= 1)) {
  throw new Error(`--embd ${C} is not a multiple of --head-size ${N}`);
}
const dtype: DType = values.dtype === "f32" ? "F32" : values.dtype === "f16" ? "F16" : "BF16";
const rng = makeRng(Number(values.seed));
const gauss = () => {
  const u = Math.max(rng(), 1e-12), v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
};

/** Encodes float values in the output dtype. */
function encode(f: Float32Array): Uint8Array {
  if (dtype === "F32") return new Uint8Array(f.buffer);
  return new Uint8Array((dtype === "F16" ? f32ToF16(f) : f32ToBf16(f)).buffer);
}

const tensors: TensorToWrite[] = [];
const zeroTensors = new Set<string>();
function add(name: string, shape: number[], gen: (i: number) => number) {
  const n = shape.reduce((a, b) => a * b, 1);
  tensors.push({
    name,
    dtype,
    shape,
    data: () => {
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = gen(i);
      return encode(f);
    },
  });
}
const mat = (name: string, rows: number, cols: number) => {
  if (zeros) {
    zeroTensors.add(name);
    tensors.push({ name, dtype, shape: [rows, cols], data: () => rows * cols * DTYPE_SIZE[dtype] });
    return;
  }
  const s = 1 / Math.sqrt(cols);
  add(name, [rows, cols], () => gauss() * s);
};
const vec = (name: string, shape: number[], base: number, spread: number) =>
  add(name, shape, () => base + (rng() - 0.5) * spread);

if (zeros) mat("emb.weight", V, C);
else add("emb.weight", [V, C], () => gauss() * 0.1);
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
    add(a + "time_maa_w1", [C, 5 * Dm], () => zeros ? 0 : gauss() / Math.sqrt(C));
    add(a + "time_maa_w2", [5, Dm, C], () => zeros ? 0 : gauss() * 0.1 / Math.sqrt(Dm));
    vec(a + "time_decay", [1, 1, C], -2, 4);
    mat(a + "time_decay_w1", C, Dd);
    mat(a + "time_decay_w2", Dd, C);
    vec(a + "time_faaaa", [H, N], 0, 1);
    for (const n of ["receptance", "key", "value", "output", "gate"]) mat(`${a}${n}.weight`, C, C);
    vec(a + "ln_x.weight", [C], 1, 0.2);
    vec(a + "ln_x.bias", [C], 0, 0.1);
    for (const n of ["k", "r"]) vec(`${f}time_maa_${n}`, [1, 1, C], 0.5, 0.8);
    mat(f + "key.weight", F6, C);
    mat(f + "receptance.weight", C, C);
    mat(f + "value.weight", C, F6);
  } else {
    const { w: D, v: Dv, g: Dg } = rwkv7LoraDims(C);
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

const metadata = {
  note: `${zeros ? "zero" : "random"} weights of the real shape, for benchmarks`,
  rwkv_version: version,
};
const label = `RWKV-${version} ${L}×${C}, vocab ${V}, ${values.dtype}${zeros ? ", sparse" : ""}`;
const bar = progressBar(`writing ${values.out}`, "bytes");
const onProgress = (d: number, t: number, name: string) => bar.update(d, t, name);
if (quant) {
  await writeQuantized(asCheckpoint(tensors), values.out, { quant, force: true, onProgress });
} else if (values.out.endsWith(".pth")) {
  await writePth(values.out, tensors, { overwrite: true, onProgress });
} else await writeSafetensors(values.out, tensors, { overwrite: true, metadata, onProgress });
bar.finish(label);

/** The tensors to write, read as a checkpoint (for the quantized writer). */
function asCheckpoint(list: TensorToWrite[]): Checkpoint {
  const infos = new Map<string, TensorInfo>();
  for (const t of list) {
    const byteLength = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    infos.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, byteLength });
  }
  const byName = new Map(list.map((t) => [t.name, t]));
  let last: { name: string; bytes: Uint8Array } | undefined;
  const whole = async (name: string) => {
    if (last?.name !== name) {
      const d = await byName.get(name)!.data();
      last = { name, bytes: typeof d === "number" ? new Uint8Array(d) : d as Uint8Array };
    }
    return last.bytes;
  };
  return {
    path: values.out!,
    format: "safetensors",
    tensors: infos,
    metadata,
    async read(name, into) {
      const b = await whole(name);
      if (!into) return b.slice();
      into.set(b);
      return into;
    },
    async readRange(name, offset, into) {
      if (zeroTensors.has(name)) return into.fill(0);
      into.set((await whole(name)).subarray(offset, offset + into.length));
      return into;
    },
    close() {},
  };
}
