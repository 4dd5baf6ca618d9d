/**
 * Merges LoRA adapters into a base checkpoint: for every adapted matrix,
 * `W' = W + (B · A) · alpha / r`, with `A` of shape (r, in) and `B` of shape (out, r).
 *
 * Names understood (as the training repositories save them):
 * - RWKV-LM-LoRA and RWKV-PEFT: `blocks.0.att.key.lora_A` / `blocks.0.att.key.lora_B`,
 *   adapting `blocks.0.att.key.weight`;
 * - Hugging Face PEFT style: `base_model.model.<name>.lora_A.weight` (also `.lora_A.default.weight`).
 *
 * Any other tensor in the LoRA file (trained layer norms, `time_*` parameters, embeddings,
 * state-tuning `time_state`) replaces or is added to the base's, as RWKV-LM-LoRA's merge does.
 * Products are accumulated in float64 and rounded once to float32.
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import type { Checkpoint, DType } from "../lib/formats/checkpoint.ts";
import { fromFloat32, toFloat32 } from "../lib/formats/dtype.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { writePth } from "../lib/formats/pth_write.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";

/**
 * Options of {@link mergeLora}.
 * @example
 * ```ts
 * import type { MergeLoraOptions } from "./lora.ts";
 * const opts: MergeLoraOptions = { alpha: 32, dtype: "bf16", overwrite: true };
 * ```
 */
export interface MergeLoraOptions {
  /** LoRA alpha: the update is scaled by alpha / r (r = rows of `lora_A`). */
  alpha: number;
  /** Float type of the output tensors (default `auto`: each tensor keeps the base's). */
  dtype?: "auto" | "f32" | "f16" | "bf16";
  /** Replace an existing output file. */
  overwrite?: boolean;
  /** Progress in bytes written. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * What a merge did.
 * @example
 * ```ts
 * const r = await mergeLora("base.pth", "lora.pth", "out.safetensors", { alpha: 32 });
 * console.log(r.merged.length, r.replaced.length);
 * ```
 */
export interface MergeLoraReport {
  /** Base tensors that received a LoRA update. */
  merged: string[];
  /** Base tensors replaced (or added) by full tensors of the LoRA file. */
  replaced: string[];
  /** The LoRA rank of each merged tensor. */
  ranks: Record<string, number>;
}

const PAIR = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.default)?(?:\.weight)?$/;

/**
 * Finds LoRA pairs: target weight name → names of its A and B tensors.
 * @example
 * ```ts
 * import { openCheckpoint } from "../lib/formats/open.ts";
 * const pairs = findLoraPairs(await openCheckpoint("lora.pth"));
 * // Map { "blocks.0.att.key.weight" => { a: "...lora_A", b: "...lora_B" }, ... }
 * ```
 */
export function findLoraPairs(
  lora: Pick<Checkpoint, "tensors">,
): Map<string, { a: string; b: string }> {
  const half = new Map<string, { a?: string; b?: string }>();
  for (const name of lora.tensors.keys()) {
    const m = PAIR.exec(name);
    if (!m) continue;
    const target = `${m[1]}.weight`;
    const e = half.get(target) ?? {};
    if (m[2] === "A") e.a = name;
    else e.b = name;
    half.set(target, e);
  }
  const out = new Map<string, { a: string; b: string }>();
  for (const [target, e] of half) {
    if (!e.a || !e.b) {
      throw new UsageError(`${target}: LoRA has ${e.a ? "lora_A" : "lora_B"} without its pair`);
    }
    out.set(target, { a: e.a, b: e.b });
  }
  return out;
}

/**
 * `W + (B · A) · scale`, W (out, in), A (r, in), B (out, r), all float32; sums in float64.
 * @example
 * ```ts
 * import { applyLora } from "./lora.ts";
 * import { deepEqual } from "node:assert/strict";
 * // W (2×2) + B (2×1) · A (1×2) · 0.5
 * const w = new Float32Array([1, 0, 0, 1]), a = new Float32Array([2, 4]), b = new Float32Array([1, -1]);
 * deepEqual([...applyLora(w, a, b, 2, 2, 1, 0.5)], [2, 2, -1, -1]);
 * ```
 */
export function applyLora(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  out: number,
  inn: number,
  r: number,
  scale: number,
): Float32Array {
  const res = new Float32Array(out * inn);
  const row = new Float64Array(inn);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      const ak = k * inn;
      for (let i = 0; i < inn; i++) row[i] += bk * a[ak + i];
    }
    const wo = o * inn;
    for (let i = 0; i < inn; i++) res[wo + i] = w[wo + i] + row[i] * scale;
  }
  return res;
}

const FLOAT: ReadonlySet<DType> = new Set(["F32", "F16", "BF16", "F64"]);
const CAST = { f32: "F32", f16: "F16", bf16: "BF16" } as const;

/**
 * Merges the LoRA file into the base checkpoint and writes `out` (`.safetensors`, or `.pth`
 * when the name ends so), tensor by tensor.
 * @example
 * ```ts
 * await mergeLora("RWKV-x070-World-0.1B.pth", "rwkv-lora.pth", "merged.safetensors", { alpha: 32 });
 * ```
 */
export async function mergeLora(
  basePath: string,
  loraPath: string,
  outPath: string,
  options: MergeLoraOptions,
): Promise<MergeLoraReport> {
  if (!Number.isFinite(options.alpha)) throw new UsageError("alpha must be a number");
  const dtype = options.dtype ?? "auto";
  if (!["auto", "f32", "f16", "bf16"].includes(dtype)) {
    throw new UsageError(`dtype must be auto, f32, f16 or bf16, not ${dtype}`);
  }
  const base = await openCheckpoint(basePath);
  let lora: Checkpoint | undefined;
  try {
    lora = await openCheckpoint(loraPath);
    const lck = lora;
    const pairs = findLoraPairs(lck);
    const report: MergeLoraReport = { merged: [], replaced: [], ranks: {} };
    // validate everything before writing anything
    for (const [target, { a, b }] of pairs) {
      const w = base.tensors.get(target);
      if (!w) throw new UsageError(`${loraPath}: LoRA for ${target}, which the base lacks`);
      const sa = lck.tensors.get(a)!.shape, sb = lck.tensors.get(b)!.shape;
      if (w.shape.length !== 2 || sa.length !== 2 || sb.length !== 2) {
        throw new UsageError(`${target}: LoRA needs 2-D tensors (W ${w.shape}, A ${sa}, B ${sb})`);
      }
      const [out, inn] = w.shape, r = sa[0];
      if (sa[1] !== inn || sb[0] !== out || sb[1] !== r) {
        throw new UsageError(
          `${target}: shapes do not fit: W (${out}, ${inn}), A (${sa}), B (${sb}); ` +
            `expected A (r, ${inn}) and B (${out}, r)`,
        );
      }
      if (!FLOAT.has(w.dtype)) throw new UsageError(`${target}: ${w.dtype} is not a float tensor`);
      report.merged.push(target);
      report.ranks[target] = r;
    }
    const full = [...lck.tensors.values()].filter((t) => !PAIR.test(t.name));
    for (const t of full) {
      const w = base.tensors.get(t.name);
      if (w && JSON.stringify(w.shape) !== JSON.stringify(t.shape)) {
        throw new UsageError(`${t.name}: LoRA file has shape (${t.shape}), base (${w.shape})`);
      }
      report.replaced.push(t.name);
    }
    const fullNames = new Set(full.map((t) => t.name));

    const outType = (d: DType): DType =>
      dtype !== "auto" && FLOAT.has(d) ? CAST[dtype] : d === "F64" ? "F32" : d;
    const tensors: TensorToWrite[] = [];
    const emit = (ck: Checkpoint, name: string) => {
      const info = ck.tensors.get(name)!;
      const to = outType(info.dtype);
      tensors.push({
        name,
        dtype: to,
        shape: info.shape,
        data: async () => {
          if (pairs.has(name)) {
            const { a, b } = pairs.get(name)!;
            const [out, inn] = info.shape;
            const ia = lck.tensors.get(a)!, ib = lck.tensors.get(b)!;
            const r = ia.shape[0];
            const merged = applyLora(
              toFloat32(await ck.read(name), info.dtype),
              toFloat32(await lck.read(a), ia.dtype),
              toFloat32(await lck.read(b), ib.dtype),
              out,
              inn,
              r,
              options.alpha / r,
            );
            return fromFloat32(merged, to as "F32" | "F16" | "BF16");
          }
          const raw = await ck.read(name);
          if (to === info.dtype) return raw;
          return fromFloat32(toFloat32(raw, info.dtype), to as "F32" | "F16" | "BF16");
        },
      });
    };
    for (const name of base.tensors.keys()) emit(fullNames.has(name) ? lck : base, name);
    for (const name of fullNames) if (!base.tensors.has(name)) emit(lck, name);

    const write = outPath.toLowerCase().endsWith(".pth") ? writePth : writeSafetensors;
    await write(outPath, tensors, {
      overwrite: options.overwrite,
      onProgress: options.onProgress,
      ...(write === writeSafetensors && {
        metadata: {
          format: "pt",
          merged_lora: loraPath.split(/[\\/]/).pop() ?? "",
          lora_alpha: String(options.alpha),
        },
      }),
    });
    return report;
  } finally {
    base.close();
    lora?.close();
  }
}
