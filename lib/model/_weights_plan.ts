/**
 * The plan of a load: for each tensor of a checkpoint, what it becomes in memory (vector,
 * matrix, low-rank factor, embedding, stored-quantized matrix), in which dtype, at what rank in
 * the arena, and the bytes all of it takes.
 * @module
 */

import type { Checkpoint, TensorInfo } from "../formats/checkpoint.ts";
import { isLargeMatrix, quantizedMatrices } from "../quant/format.ts";
import { type ModelSpec, squeezed } from "../spec/spec.ts";
import { matrixBytes, type MatrixLayout, type StorageDType, type WeightDType } from "./tensor.ts";

/** Low-rank factors applied as `x @ W` (RWKV-6 token-shift and decay, RWKV-7 w/a/v/g). */
const LOW_RANK = /\.(time_maa_w1|time_decay_w1|time_decay_w2|[wavg][12])$/;

/** What one tensor becomes in memory. */
export interface Plan {
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

/** The plan of a whole load. */
export interface WeightsPlan {
  /** The tensors in arena order. */
  plans: Plan[];
  /** Bytes the arena needs for them. */
  bytes: number;
  /** Storage dtype of the large matrices. */
  mainDtype: StorageDType;
}

/**
 * Plans the load of `ck`'s tensors with the large matrices in `requested` storage, arranged by
 * `layout` (default row-major), in the order a decoded token reads them. Reads no tensor data:
 * benchmarks count what a token reads from it without loading the model a second time.
 * @example
 * ```ts
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * import { detectSpec } from "../spec/spec.ts";
 * declare const ck: Checkpoint;
 * const { plans, bytes } = planWeights(ck, detectSpec(ck.tensors, ck.path), "q8", undefined);
 * console.log(plans.length, bytes);
 * ```
 */
export function planWeights(
  ck: Checkpoint,
  spec: ModelSpec,
  requested: WeightDType,
  layout: MatrixLayout | undefined,
): WeightsPlan {
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
      const b = matrixBytes(q.rows, q.cols, dtype, layout);
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
      const b = matrixBytes(p.rows, p.cols, p.dtype, layout);
      bytes += n * (b.data + b.scales + 128);
    }
  }
  plans.sort((a, b) => readRank(a.name) - readRank(b.name)); // stable: the file's order within
  return { plans, bytes, mainDtype };
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
