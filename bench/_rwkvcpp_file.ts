/**
 * Writes an rwkv.cpp model file (`.bin`, FP16 or FP32) from any checkpoint we read, as rwkv.cpp's
 * own converter (`python/convert_pytorch_to_ggml.py`) does from the `.pth`, so that rwkv.cpp can be
 * timed on the same weights as ours (bench/rwkvcpp_ab.ts) on a machine without PyTorch.
 *
 * RWKV-4 and RWKV-7 (the versions benchmarked against rwkv.cpp). What the converter does, and
 * so this: header magic `ggmf`, version 101, n_vocab, n_embed, n_layer, data type (1 for FP16);
 * each tensor in the checkpoint's order as dim count, name length, type, dims reversed (ggml
 * order), name, data. `.time_*` tensors squeezed; RWKV-4 `time_decay` stored as `-exp(w)`;
 * RWKV-7 `att.x_r … x_g` concatenated into `att.x_rwkvag` (6, 1, C) in that order, where `x_r`
 * was, and the low-rank factors `att.{w,a,v,g}{1,2}` transposed. At FP16 only matrices are half
 * (2-D and more, except `.time_*`, `k_k`, `k_a`, `r_k`, `x_rwkvag`, `x_k`, `w0`, `a0`, `v0`); the
 * rest stays FP32. A matrix value beyond FP16's range is refused (the file would hold infinities).
 * @module
 */

import type { Checkpoint } from "../lib/formats/checkpoint.ts";
import { f32ToF16, toFloat32 } from "../lib/formats/dtype.ts";
import { RWKVCPP_MAGIC } from "../lib/formats/rwkvcpp.ts";
import { detectSpec } from "../lib/spec/spec.ts";

const KEEP_F32 = [".time_", ".k_k", ".k_a", ".r_k", ".x_rwkvag", ".x_k", ".w0", ".a0", ".v0"];
const LOW_RANK = [".w1", ".w2", ".a1", ".a2", ".v1", ".v2", ".g1", ".g2"];
const MIX = ["r", "w", "k", "v", "a", "g"]; // att.x_rwkvag's order

/**
 * Writes `ck` to `path` in rwkv.cpp's format (`type` FP16 or FP32), through `path.tmp` renamed
 * into place; returns the tensors and bytes written. `onTensor` is called after each tensor.
 * @example
 * ```ts ignore
 * const ck = await openCheckpoint("4-430m.safetensors");
 * await writeRwkvCpp(ck, "/tmp/4-430m-FP16.bin", "FP16");
 * ```
 */
export async function writeRwkvCpp(
  ck: Checkpoint,
  path: string,
  type: "FP16" | "FP32",
  onTensor?: (count: number, bytes: number) => void,
): Promise<{ tensors: number; bytes: number }> {
  const spec = detectSpec(ck.tensors, ck.path);
  if (spec.version !== "4" && spec.version !== "7") {
    throw new RangeError(`${ck.path} is RWKV-${spec.version}; rwkv.cpp files are written for 4, 7`);
  }
  const v7 = spec.version === "7", half = type === "FP16";
  const values = async (name: string) => {
    const t = ck.tensors.get(name)!;
    return { data: toFloat32(await ck.read(name), t.dtype), shape: [...t.shape] };
  };
  // the tensors as the converter leaves them: [name, values, PyTorch shape]
  async function* converted(): AsyncGenerator<[string, Float32Array, number[]]> {
    for (const name of ck.tensors.keys()) {
      if (v7 && /\.att\.x_[rwkvag]$/.test(name)) {
        if (!name.endsWith(".x_r")) continue; // all six go out together, at the first
        const stem = name.slice(0, -1), parts = await Promise.all(MIX.map((m) => values(stem + m)));
        const c = parts[0].data.length, data = new Float32Array(6 * c);
        parts.forEach((p, i) => data.set(p.data, i * c));
        yield [stem + "rwkvag", data, [6, 1, c]];
        continue;
      }
      let { data, shape } = await values(name);
      if (name.includes(".time_")) shape = shape.filter((d) => d !== 1);
      if (v7 && LOW_RANK.some((s) => name.endsWith(s))) {
        const [r, c] = shape, t = new Float32Array(data.length);
        for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = data[i * c + j];
        [data, shape] = [t, [c, r]];
      }
      if (!v7 && name.endsWith(".time_decay")) data = data.map((w) => -Math.exp(w));
      yield [name, data, shape];
    }
  }
  const u32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let tensors = 0, bytes = 0;
  try {
    const write = async (b: Uint8Array) => {
      for (let at = 0; at < b.length;) at += await file.write(b.subarray(at));
      bytes += b.length;
    };
    await write(u32(RWKVCPP_MAGIC, 101, spec.vocab, spec.embd, spec.layers, half ? 1 : 0));
    for await (const [name, data, shape] of converted()) {
      const asHalf = half && shape.length > 1 && !KEEP_F32.some((s) => name.includes(s));
      const bad = asHalf ? data.findIndex((x) => !(Math.abs(x) <= 65504)) : -1;
      if (bad >= 0) throw new RangeError(`${name}[${bad}] = ${data[bad]} does not fit in FP16`);
      const key = new TextEncoder().encode(name);
      await write(u32(shape.length, key.length, asHalf ? 1 : 0, ...[...shape].reverse()));
      await write(key);
      await write(new Uint8Array(asHalf ? f32ToF16(data).buffer : data.buffer));
      tensors++;
      onTensor?.(tensors, bytes);
    }
  } catch (e) {
    file.close();
    await Deno.remove(tmp);
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
  return { tensors, bytes };
}
