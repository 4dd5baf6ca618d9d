/**
 * Loads a checkpoint's tensors into one arena of CPU memory, tensor by tensor (peak memory: the arena
 * plus one tensor), applying the load-time transforms of the official package: the embedding
 * is layer-normed with `blocks.0.ln0` once, decays are pre-exponentiated, low-rank matrices are
 * transposed to (out, in), and the large matrices are stored in the requested dtype.
 * @module
 */

import { FormatError, ModelError } from "../errors.ts";
import type { Checkpoint, TensorInfo } from "../formats/checkpoint.ts";
import { f32ToBf16, f32ToF16, toFloat32 } from "../formats/dtype.ts";
import { dequantizeQ4, dequantizeQ8, quantizeQ4, quantizeQ8 } from "../quant/block.ts";
import { isLargeMatrix, quantizedMatrices } from "../quant/format.ts";
import { layerNorm } from "./norm.ts";
import { type ModelSpec, squeezed } from "../spec/spec.ts";
import type { WeightSource } from "./ops.ts";
import {
  Arena,
  type Matrix,
  matrixBytes,
  type MatrixDesc,
  type MatrixLayout,
  PLAIN_LAYOUT,
  type StorageDType,
  viewMatrix,
} from "./tensor.ts";

/**
 * Storage asked for the large matrices: `auto` keeps the checkpoint's own float type.
 * @example
 * ```ts ignore
 * const dtype: WeightDType = "q4";
 * await loadModel("model.pth", { dtype });
 * ```
 */
export type WeightDType = "auto" | StorageDType;

/** Where one loaded tensor lives in the arena. */
export type TensorDesc =
  | { readonly kind: "vec"; readonly offset: number; readonly length: number }
  | { readonly kind: "mat"; readonly desc: MatrixDesc };

/** Serializable description of all loaded weights (with the memory, all it takes to view them). */
export interface WeightsLayout {
  readonly spec: ModelSpec;
  readonly tensors: Readonly<Record<string, TensorDesc>>;
  /** Storage dtype of the large matrices. */
  readonly dtype: StorageDType;
  /** Bytes the weights take in the arena. */
  readonly bytes: number;
}

/** Loaded weights: typed views by name over the arena. */
export class Weights implements WeightSource<Float32Array, Matrix> {
  readonly layout: WeightsLayout;
  /** The arena's first memory (vectors, and the matrices unless they have memories of their own). */
  readonly buffer: ArrayBufferLike;
  #buffers: readonly ArrayBufferLike[];
  #vecs = new Map<string, Float32Array>();
  #mats = new Map<string, Matrix>();

  /** Views over `buffers`: the arena's memories' buffers ({@link Arena.buffers}), or its one. */
  constructor(layout: WeightsLayout, buffers: ArrayBufferLike | readonly ArrayBufferLike[]) {
    this.layout = layout;
    this.#buffers = Array.isArray(buffers) ? buffers : [buffers as ArrayBufferLike];
    this.buffer = this.#buffers[0];
  }

  /** The model's shape. */
  get spec(): ModelSpec {
    return this.layout.spec;
  }

  /** True when the weights hold `name`. */
  has(name: string): boolean {
    return Object.hasOwn(this.layout.tensors, name);
  }

  /** A vector (any loaded non-matrix tensor, flattened); `length` checks its size. */
  vec(name: string, length?: number): Float32Array {
    let v = this.#vecs.get(name);
    if (!v) {
      const d = this.layout.tensors[name];
      if (!d) throw new ModelError(`missing tensor ${name}`);
      if (d.kind !== "vec") throw new ModelError(`tensor ${name} is a matrix, expected a vector`);
      v = new Float32Array(this.buffer, d.offset, d.length);
      this.#vecs.set(name, v);
    }
    checkShape(name, v.length, 1, length, 1);
    return v;
  }

  /** A matrix stored (out, in), row-major; `rows`/`cols` check its shape. */
  mat(name: string, rows?: number, cols?: number): Matrix {
    let m = this.#mats.get(name);
    if (!m) {
      const d = this.layout.tensors[name];
      if (!d) throw new ModelError(`missing tensor ${name}`);
      if (d.kind !== "mat") throw new ModelError(`tensor ${name} is a vector, expected a matrix`);
      m = viewMatrix(this.#buffers, d.desc);
      this.#mats.set(name, m);
    }
    checkShape(name, m.rows, m.cols, rows, cols);
    return m;
  }
}

/**
 * Checks a weight's shape against what the forward pass expects (`undefined`: any), for every
 * {@link WeightSource}: a vector is `length × 1`, a matrix `rows × cols` (out × in).
 * @example
 * ```ts ignore
 * checkShape("blocks.0.att.key.weight", m.rows, m.cols, C, C); // ModelError naming it if not
 * ```
 */
export function checkShape(
  name: string,
  rows: number,
  cols: number,
  wantRows: number | undefined,
  wantCols: number | undefined,
): void {
  if (
    (wantRows === undefined || rows === wantRows) && (wantCols === undefined || cols === wantCols)
  ) {
    return;
  }
  throw new ModelError(
    cols === 1 && wantCols === 1
      ? `tensor ${name} has ${rows} values, expected ${wantRows}`
      : `tensor ${name} is ${rows}×${cols} (out×in), expected ${wantRows ?? rows}×${
        wantCols ?? cols
      }`,
  );
}

/** Options of {@link loadWeights}. */
export interface LoadWeightsOptions {
  /** Storage of the large matrices (default `auto`). */
  dtype?: WeightDType;
  /** Extra bytes to reserve in the arena after the weights (a backend's buffers). */
  extraBytes?: number;
  /** How matrices are arranged in memory (default row-major: {@link PLAIN_LAYOUT}). */
  layout?: MatrixLayout;
  /**
   * Matrices in memories of their own of at most this many bytes each (see {@link Arena}); by
   * default only a model too large for one memory beside a backend's buffers.
   */
  matrixMemoryBytes?: number;
  /** Called after each tensor. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/** Low-rank factors applied as `x @ W` (RWKV-6 token-shift and decay, RWKV-7 w/a/v/g). */
const LOW_RANK = /\.(time_maa_w1|time_decay_w1|time_decay_w2|[wavg][12])$/;

interface Plan {
  name: string;
  info: TensorInfo;
  kind: "vec" | "mat" | "lowrank" | "lowrank3" | "emb" | "qmat";
  dtype: StorageDType;
  rows: number;
  cols: number;
  count: number;
  /** qmat, emb: how the file stores it, and its `.qscale` companion. */
  stored?: { quant: "q8" | "q4"; scale: TensorInfo };
  /** emb from a float source: quantized and dequantized with this scheme before ln0. */
  roundTrip?: "q8" | "q4";
}

/** Vector transforms the official package applies at load, per version. */
function transformVector(spec: ModelSpec, name: string, v: Float32Array): Float32Array {
  const ver = spec.version;
  if (name.endsWith(".time_decay")) {
    if (ver === "4") return v.map((x) => -Math.exp(x));
    if (ver.startsWith("5")) return expandHeads(spec, v.map((x) => Math.exp(-Math.exp(x))));
    return v; // RWKV-6: the decay is data-dependent, exponentiated per token.
  }
  if (name.endsWith(".time_first") && ver !== "4") {
    return expandHeads(spec, v.map((x) => Math.exp(x)));
  }
  if (name.endsWith(".time_faaaa")) return expandHeads(spec, v);
  return v;
}

/** RWKV-5.0/5.1 store one decay per head: repeat it over the head's channels. */
function expandHeads(spec: ModelSpec, v: Float32Array): Float32Array {
  if (v.length !== spec.heads || spec.heads === spec.attDim) return v;
  const out = new Float32Array(spec.attDim);
  for (let h = 0; h < spec.heads; h++) {
    out.fill(v[h], h * spec.headSize, (h + 1) * spec.headSize);
  }
  return out;
}

function storageFor(requested: WeightDType, src: TensorInfo, cols: number): StorageDType {
  let d: StorageDType;
  if (requested === "auto") {
    d = src.dtype === "BF16" ? "bf16" : src.dtype === "F16" ? "f16" : "f32";
  } else d = requested;
  if ((d === "q8" || d === "q4") && cols % 32 !== 0) d = "f32";
  return d;
}

/**
 * Storage of the small float matrices (the low-rank factors of RWKV-6/7): their own 16-bit type
 * when the file stores them so, which holds them exactly in half the bytes of f32 (they are a
 * tenth of what an RWKV-7 token reads), unless f32 storage was asked for; f32 otherwise.
 */
function lowRankStorage(requested: WeightDType, src: TensorInfo): StorageDType {
  if (requested === "f32") return "f32";
  return src.dtype === "BF16" ? "bf16" : src.dtype === "F16" ? "f16" : "f32";
}

/**
 * Where a tensor goes in the arena: block by block, and in a block the matrices in the order a
 * decoded token reads them, the products that share a barrier side by side (receptance, key,
 * value, gate and the low-rank branches' first halves; their second halves; the output; the
 * channel mix's key and receptance; its value), so each Worker's share of them is one sequential
 * run (the engine claims such a group's rows in memory order). Vectors first in their block.
 */
function readRank(name: string): number {
  const m = /^blocks\.(\d+)\.(.*)$/.exec(name);
  if (!m) return name.startsWith("emb") ? -1 : 1e9; // the embedding first, the head last
  const rest = m[2];
  const stage =
    /^att\.(receptance|key|value|gate)\.weight$|^att\.[wavg]1$|^att\.time_(maa|decay)_w1$/
        .test(rest)
      ? 1
      : /^att\.[wavg]2$|^att\.time_(maa|decay)_w2$/.test(rest)
      ? 2
      : /^att\.output\.weight$/.test(rest)
      ? 3
      : /^ffn\.(key|receptance)\.weight$/.test(rest)
      ? 4
      : /^ffn\.value\.weight$/.test(rest)
      ? 5
      : 0;
  return Number(m[1]) * 8 + stage;
}

/** Plans, allocates and fills the arena from a checkpoint. */
export async function loadWeights(
  ck: Checkpoint,
  spec: ModelSpec,
  options: LoadWeightsOptions = {},
): Promise<{ weights: Weights; arena: Arena }> {
  const requested = options.dtype ?? "auto";
  const plans: Plan[] = [];
  let bytes = 0;
  const qmats = quantizedMatrices(ck, spec);
  const ffnKey = qmats.get("blocks.0.ffn.key.weight");
  const mainDtype = requested === "auto"
    ? ffnKey?.quant ?? storageFor("auto", ck.tensors.get("blocks.0.ffn.key.weight")!, spec.embd)
    : requested;
  for (const [name, info] of ck.tensors) {
    if (name.startsWith("blocks.0.ln0.")) continue; // folded into the embedding
    if (qmats.size && name.endsWith(".qscale")) continue; // read with its matrix
    const q = qmats.get(name);
    if (q && name !== "emb.weight") {
      // Stored quantized: kept as is when that is what is asked, never re-quantized.
      const dtype = requested === "auto" ? q.quant : storageFor(requested, info, q.cols);
      const count = q.rows * q.cols;
      plans.push({
        name,
        info,
        kind: "qmat",
        dtype,
        rows: q.rows,
        cols: q.cols,
        count,
        stored: { quant: q.quant, scale: q.scale },
      });
      const b = matrixBytes(q.rows, q.cols, dtype, options.layout);
      bytes += b.data + b.scales + 128;
      continue;
    }
    if (!/^(emb|head|ln_out|blocks)\./.test(name)) continue;
    const sq = squeezed(info.shape);
    const count = info.shape.reduce((a, b) => a * b, 1);
    let p: Plan;
    if (name === "emb.weight") {
      // The layer-normed embedding is a float result: keep it exact (as the official package
      // does) unless the model is quantized, where bf16 rows halve its memory.
      const dtype: StorageDType = mainDtype === "q8" || mainDtype === "q4" ? "bf16" : "f32";
      p = q
        ? { name, info, kind: "emb", dtype, rows: q.rows, cols: q.cols, count: q.rows * q.cols }
        : { name, info, kind: "emb", dtype, rows: info.shape[0], cols: info.shape[1], count };
      if (q) p.stored = { quant: q.quant, scale: q.scale };
      // A float embedding of a model quantized on load goes through the same scheme a
      // quantized file stores it in, so both give the same model.
      else if ((mainDtype === "q8" || mainDtype === "q4") && p.cols % 32 === 0) {
        p.roundTrip = mainDtype;
      }
    } else if (isLargeMatrix(name, info.shape)) {
      const [rows, cols] = sq;
      p = { name, info, kind: "mat", dtype: storageFor(requested, info, cols), rows, cols, count };
    } else if (sq.length === 2 && LOW_RANK.test(name)) {
      // Low-rank (LoRA-style) factors used as x @ W: stored transposed, (out, in), exactly.
      const dtype = lowRankStorage(requested, info);
      p = { name, info, kind: "lowrank", dtype, rows: sq[1], cols: sq[0], count };
    } else if (sq.length === 3 && name.endsWith("time_maa_w2")) {
      // RWKV-6 (5, D, C): five (C, D) matrices after transposing.
      const dtype = lowRankStorage(requested, info);
      p = { name, info, kind: "lowrank3", dtype, rows: sq[2], cols: sq[1], count };
    } else {
      p = { name, info, kind: "vec", dtype: "f32", rows: 1, cols: count, count };
    }
    plans.push(p);
    if (p.kind === "vec") bytes += 64 + Math.max(count, spec.attDim, spec.embd) * 4;
    else {
      const n = p.kind === "lowrank3" ? sq[0] : 1;
      const b = matrixBytes(p.rows, p.cols, p.dtype, options.layout);
      bytes += n * (b.data + b.scales + 128);
    }
  }
  plans.sort((a, b) => readRank(a.name) - readRank(b.name)); // stable: the file's order within
  const matrixLayout = options.layout ?? PLAIN_LAYOUT;
  const arena = new Arena(bytes + (options.extraBytes ?? 0), undefined, matrixLayout, {
    matrixMemoryBytes: options.matrixMemoryBytes,
  });
  const tensors: Record<string, TensorDesc> = {};
  const ln0w = ck.tensors.has("blocks.0.ln0.weight")
    ? toFloat32(await ck.read("blocks.0.ln0.weight"), ck.tensors.get("blocks.0.ln0.weight")!.dtype)
    : undefined;
  const ln0b = ck.tensors.has("blocks.0.ln0.bias")
    ? toFloat32(await ck.read("blocks.0.ln0.bias"), ck.tensors.get("blocks.0.ln0.bias")!.dtype)
    : undefined;

  let done = 0;
  const scratch = new Scratch();
  for (const p of plans) {
    const { name, info } = p;
    if (p.kind === "qmat") {
      tensors[name] = { kind: "mat", desc: await loadStoredQuantized(ck, arena, p) };
    } else if (p.kind === "mat" && p.dtype === "bf16" && info.dtype === "BF16") {
      // Same type: bytes go straight from the file into the arena.
      const d = arena.allocMatrix(p.rows, p.cols, "bf16");
      await ck.read(name, new Uint8Array(arena.bufferOf(d), d.offset, p.count * 2));
      tensors[name] = { kind: "mat", desc: d };
    } else if (p.kind === "emb") {
      const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
      await loadEmbedding(ck, arena.view(d), p, ln0w, ln0b, scratch);
      tensors[name] = { kind: "mat", desc: d };
    } else if (p.kind === "mat") {
      // Large matrices: converted and stored a block of rows at a time, so neither the whole
      // stored tensor (with ranged reads) nor a float copy of it is ever in memory.
      const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
      const m = arena.view(d);
      const rowBytes = info.byteLength / p.rows;
      await eachRowBlock(ck, name, p.rows, rowBytes, scratch, (bytes, r0, r1) => {
        const values = toFloat32(bytes, info.dtype, scratch.floats((r1 - r0) * p.cols));
        storeRows(m, values, r0, r1, ck.path, name);
      });
      tensors[name] = { kind: "mat", desc: d };
    } else {
      const raw = toFloat32(await ck.read(name), info.dtype);
      if (p.kind === "vec") {
        const v = transformVector(spec, name, raw);
        const off = arena.alloc(v.length * 4);
        new Float32Array(arena.buffer, off, v.length).set(v);
        tensors[name] = { kind: "vec", offset: off, length: v.length };
      } else if (p.kind === "lowrank") {
        tensors[name] = {
          kind: "mat",
          desc: store(arena, transpose(raw, p.cols, p.rows), p, ck.path),
        };
      } else if (p.kind === "lowrank3") {
        const parts = squeezed(info.shape)[0];
        for (let i = 0; i < parts; i++) {
          const part = raw.subarray(i * p.rows * p.cols, (i + 1) * p.rows * p.cols);
          tensors[`${name}.${i}`] = {
            kind: "mat",
            desc: store(arena, transpose(part, p.cols, p.rows), p, ck.path),
          };
        }
      }
    }
    done++;
    options.onProgress?.(done, plans.length, name);
  }
  for (const t of Object.values(tensors)) {
    if (t.kind === "mat") arena.layout.finish(arena.bufferOf(t.desc), t.desc);
  }
  const layout: WeightsLayout = { spec, tensors, dtype: mainDtype, bytes: arena.usedTotal };
  return { weights: new Weights(layout, arena.buffers), arena };
}

/**
 * The embedding, a block of rows at a time: decoded to float (dequantized when the file stores it
 * quantized, passed through `p.roundTrip` when the model is quantized from a float source),
 * layer-normed with `blocks.0.ln0` as the official package does at load, stored in `m`'s dtype.
 */
async function loadEmbedding(
  ck: Checkpoint,
  m: Matrix,
  p: Plan,
  ln0w: Float32Array | undefined,
  ln0b: Float32Array | undefined,
  scratch: Scratch,
): Promise<void> {
  const { rows: nr, cols } = p;
  let scales: Float32Array | undefined;
  if (p.stored) {
    scales = toFloat32(await ck.read(p.stored.scale.name), p.stored.scale.dtype);
  }
  await eachRowBlock(ck, p.name, nr, p.info.byteLength / nr, scratch, (bytes, r0, r1) => {
    let rows: Float32Array;
    if (p.stored) {
      const s = scales!.subarray((r0 * cols) / 32, (r1 * cols) / 32);
      const out = scratch.floats((r1 - r0) * cols);
      rows = p.stored.quant === "q8"
        ? dequantizeQ8(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length), s, out)
        : dequantizeQ4(bytes, s, out);
    } else {
      rows = toFloat32(bytes, p.info.dtype, scratch.floats((r1 - r0) * cols));
      if (p.roundTrip === "q8") {
        const r = quantizeQ8(rows);
        dequantizeQ8(r.q, r.scales, rows);
      } else if (p.roundTrip === "q4") {
        const r = quantizeQ4(rows);
        dequantizeQ4(r.q, r.scales, rows);
      }
    }
    if (ln0w && ln0b) {
      for (let r = 0; r < r1 - r0; r++) layerNorm(rows, ln0w, ln0b, rows, cols, r * cols);
    }
    storeRows(m, rows, r0, r1, ck.path, p.name);
  });
}

/**
 * Reusable buffers that grow to the largest request: one for stored bytes, one for their
 * float values (fresh arrays per block would pile up outside the JS heap until a GC).
 */
class Scratch {
  #buf = new Uint8Array(0);
  #floats = new Float32Array(0);
  get(n: number): Uint8Array {
    if (this.#buf.length < n) this.#buf = new Uint8Array(n);
    return this.#buf.subarray(0, n);
  }
  floats(n: number): Float32Array {
    if (this.#floats.length < n) this.#floats = new Float32Array(n);
    return this.#floats.subarray(0, n);
  }
}

/** Bytes of stored rows a streamed read brings in at once. */
const BLOCK_BYTES = 1 << 22;

/**
 * Hands the stored bytes of a tensor's rows to `use`, a block of rows at a time. With ranged
 * reads only one block is ever in memory; without, the tensor is read once into `scratch`.
 */
async function eachRowBlock(
  ck: Checkpoint,
  name: string,
  rows: number,
  rowBytes: number,
  scratch: Scratch,
  use: (bytes: Uint8Array, r0: number, r1: number) => void,
): Promise<void> {
  const step = Math.max(1, Math.floor(BLOCK_BYTES / rowBytes));
  const whole = ck.readRange ? undefined : await ck.read(name, scratch.get(rows * rowBytes));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const bytes = whole
      ? whole.subarray(r0 * rowBytes, r1 * rowBytes)
      : await ck.readRange!(name, r0 * rowBytes, scratch.get((r1 - r0) * rowBytes));
    use(bytes, r0, r1);
  }
}

/**
 * A matrix stored as integers + block scales: in its own scheme the bytes go straight into
 * the arena and only the scales are widened to f32; in any other dtype it is dequantized first.
 */
async function loadStoredQuantized(ck: Checkpoint, arena: Arena, p: Plan): Promise<MatrixDesc> {
  const { quant, scale } = p.stored!;
  const nb = (p.rows * p.cols) / 32;
  const scales = toFloat32(await ck.read(scale.name), scale.dtype);
  const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
  const m = arena.view(d);
  if (p.dtype === quant) {
    await ck.read(p.name, new Uint8Array(arena.bufferOf(d), d.offset, p.info.byteLength));
    m.scales.subarray(0, nb).set(scales);
    return d;
  }
  const raw = await ck.read(p.name);
  const values = quant === "q8"
    ? dequantizeQ8(new Int8Array(raw.buffer, raw.byteOffset, raw.length), scales)
    : dequantizeQ4(raw, scales);
  storeRows(m, values, 0, p.rows, ck.path, p.name);
  return d;
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}

/**
 * Stores rows [r0, r1) of a matrix from their float values, in the matrix's dtype. f16 storage
 * refuses infinities and NaNs (also values past ±65504, which round to infinity): the f16
 * products may convert without handling them, and such a model could only produce NaN anyway.
 */
function storeRows(
  m: Matrix,
  values: Float32Array,
  r0: number,
  r1: number,
  file: string,
  tensor: string,
): void {
  const c = m.cols, a = r0 * c, b = r1 * c;
  switch (m.dtype) {
    case "f32":
      (m.data as Float32Array).set(values, a);
      break;
    case "bf16":
      f32ToBf16(values, (m.data as Uint16Array).subarray(a, b));
      break;
    case "f16": {
      const h = (m.data as Uint16Array).subarray(a, b);
      f32ToF16(values, h);
      for (let i = 0; i < h.length; i++) {
        if ((h[i] & 0x7c00) === 0x7c00) {
          throw new FormatError(
            file,
            tensor,
            `value ${values[i]} at row ${r0 + Math.floor(i / c)} cannot be stored as f16 ` +
              "(infinite, NaN or beyond ±65504): load it as bf16 or f32",
          );
        }
      }
      break;
    }
    case "q8":
      quantizeQ8(values, (m.data as Int8Array).subarray(a, b), m.scales.subarray(a / 32, b / 32));
      break;
    case "q4":
      quantizeQ4(
        values,
        (m.data as Uint8Array).subarray(a / 2, b / 2),
        m.scales.subarray(a / 32, b / 32),
      );
      break;
  }
}

function store(arena: Arena, values: Float32Array, p: Plan, file: string): MatrixDesc {
  const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
  storeRows(arena.view(d), values, 0, p.rows, file, p.name);
  return d;
}
