/**
 * llama.cpp's `rwkv6` and `rwkv7` GGUF layouts read back into the official RWKV-LM layout (the
 * names, shapes and value conventions of the `.pth`), undoing what llama.cpp's converter
 * (`convert_hf_to_gguf.py`, Rwkv6Model / Rwkv7Model) did, as `src/models/rwkv6.cpp` and
 * `rwkv7.cpp` load it:
 * - names: `token_embd` → `emb`, `token_embd_norm` → `blocks.0.ln0`, `output_norm` → `ln_out`,
 *   `output` → `head`, `blk.N.attn_norm(_2)` → `blocks.N.ln1` (`ln2`), `time_mix_X` →
 *   `att.X`, `time_mix_ln` → `att.ln_x`, `channel_mix_X` → `ffn.X`;
 * - vectors were squeezed: `(1, 1, C)` restored for the mixes, `w0`, `a0`, `v0`, `k_k`, `k_a`,
 *   `time_decay`; RWKV-7's `r_k` was flattened: back to `(H, N)` by `rwkv7.wkv.head_size`;
 * - the token-shift mixes were stacked into `time_mix_lerp_fused` (RWKV-7: r, w, k, v, a, g;
 *   RWKV-6: w, k, v, r, g): split back (RWKV-6's unfused `time_mix_lerp_w…g` read too);
 * - low-rank matrices were transposed (RWKV-7's `w1 w2 a1 a2 v1 v2 g1 g2`, RWKV-6's
 *   `time_maa_w1`, `time_decay_w1/w2`) and RWKV-6's `time_maa_w2` (5, D, C) had its last two axes
 *   swapped: transposed back;
 * - RWKV-7's layer 0 carries placeholders `time_mix_v0/v1/v2` (copies of `a0/a1/a2`; llama.cpp
 *   requires them, nothing reads them): left out;
 * - RWKV-6 files with `rwkv6.rescale_every_n_layers` = n > 0 store `att.output.weight` and
 *   `ffn.value.weight` of layer i divided by 2^⌊i/n⌋ and halve the residual every n layers at run
 *   time (the official package's fp16 RESCALE_LAYER): multiplied back by that power of two
 *   (exact), so the model computes as the official float32 code does.
 *
 * Storage: F32 stays F32, F16 and BF16 stay 16-bit (transposed in place; a rescaled F16 value
 * that would not be exact is refused); Q8_0, Q5_0 and Q4_0 matrices that need no transposing are
 * block-quantized integers (Q8_0 and Q5_0 as q8 with q − 16, Q4_0 as q4 with the same nibbles, one
 * scale per 32 values, exactly ggml's values) listed in `Checkpoint.blockQuantized`; every other
 * quantized tensor is decoded to F32 exactly as ggml decodes it.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { BlockQuantized, Checkpoint, DType, TensorInfo } from "./checkpoint.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.ts";
import {
  blockScales,
  BlockSplitter,
  dequantizeGgmlType,
  GGML,
  GGML_TYPES,
  ggmlTypeName,
  mapsOntoQ8,
  toQ4,
  toQ8,
} from "./ggml_quants.ts";
import { type GgufFile, type GgufTensor, metadataObject } from "./_gguf_format.ts";
import { swapLastAxes } from "./_transpose.ts";

/** Bytes of stored blocks read at once. */
const CHUNK_BYTES = 4 << 20;

/** How one official tensor is made from a stored one. */
interface Exposed {
  readonly info: TensorInfo;
  readonly src: GgufTensor;
  /** raw: the stored bytes (F32/F16/BF16) after the transforms; q8/q4/scale: block-quantized. */
  readonly kind: "raw" | "f32" | "q8" | "q4" | "scale";
  /** Part `index` of `parts` equal consecutive parts of the stored values. */
  readonly part?: { readonly index: number; readonly parts: number };
  /** Swap the last two axes of the stored (batch, rows, cols) values. */
  readonly transpose?: { readonly batch: number; readonly rows: number; readonly cols: number };
  /** Multiply every value by this power of two. */
  readonly mul?: number;
}

export const X7 = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"];
export const X6 = ["time_maa_w", "time_maa_k", "time_maa_v", "time_maa_r", "time_maa_g"];

/** Official name and layout of every GGUF tensor name (without the block prefix). */
export const COMMON: Readonly<Record<string, string>> = {
  "attn_norm.weight": "ln1.weight",
  "attn_norm.bias": "ln1.bias",
  "attn_norm_2.weight": "ln2.weight",
  "attn_norm_2.bias": "ln2.bias",
  "time_mix_receptance.weight": "att.receptance.weight",
  "time_mix_key.weight": "att.key.weight",
  "time_mix_value.weight": "att.value.weight",
  "time_mix_output.weight": "att.output.weight",
  "time_mix_gate.weight": "att.gate.weight",
  "time_mix_ln.weight": "att.ln_x.weight",
  "time_mix_ln.bias": "att.ln_x.bias",
  "channel_mix_key.weight": "ffn.key.weight",
  "channel_mix_value.weight": "ffn.value.weight",
  "channel_mix_receptance.weight": "ffn.receptance.weight",
};
/** Vectors restored to (1, 1, C). */
export const VEC7: Readonly<Record<string, string>> = {
  "time_mix_w0.weight": "att.w0",
  "time_mix_a0.weight": "att.a0",
  "time_mix_v0.weight": "att.v0",
  "time_mix_k_k.weight": "att.k_k",
  "time_mix_k_a.weight": "att.k_a",
  "channel_mix_lerp_k.weight": "ffn.x_k",
};
export const VEC6: Readonly<Record<string, string>> = {
  "time_mix_lerp_x.weight": "att.time_maa_x",
  "time_mix_lerp_w.weight": "att.time_maa_w",
  "time_mix_lerp_k.weight": "att.time_maa_k",
  "time_mix_lerp_v.weight": "att.time_maa_v",
  "time_mix_lerp_r.weight": "att.time_maa_r",
  "time_mix_lerp_g.weight": "att.time_maa_g",
  "time_mix_decay.weight": "att.time_decay",
  "channel_mix_lerp_k.weight": "ffn.time_maa_k",
  "channel_mix_lerp_r.weight": "ffn.time_maa_r",
};
/** Transposed matrices. */
export const LOW7: Readonly<Record<string, string>> = Object.fromEntries(
  ["w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"].map((n) => [`time_mix_${n}.weight`, `att.${n}`]),
);
export const LOW6: Readonly<Record<string, string>> = {
  "time_mix_w1.weight": "att.time_maa_w1",
  "time_mix_w2.weight": "att.time_maa_w2",
  "time_mix_decay_w1.weight": "att.time_decay_w1",
  "time_mix_decay_w2.weight": "att.time_decay_w2",
};
export const TOP: Readonly<Record<string, string>> = {
  "token_embd.weight": "emb.weight",
  "token_embd_norm.weight": "blocks.0.ln0.weight",
  "token_embd_norm.bias": "blocks.0.ln0.bias",
  "output_norm.weight": "ln_out.weight",
  "output_norm.bias": "ln_out.bias",
  "output.weight": "head.weight",
};

/** An integer metadata value, or undefined; a FormatError when it is there but not an integer. */
function intKey(g: GgufFile, key: string): number | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new FormatError(g.path, key, `expected a non-negative integer, got ${String(v)}`);
  }
  return v;
}

function product(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** The official view of an `rwkv6` / `rwkv7` GGUF file. */
export function rwkvView(g: GgufFile, arch: "rwkv6" | "rwkv7"): Checkpoint {
  const path = g.path;
  const v7 = arch === "rwkv7";
  const embd = intKey(g, `${arch}.embedding_length`);
  const layers = intKey(g, `${arch}.block_count`);
  const headSize = intKey(g, `${arch}.wkv.head_size`);
  const shiftCount = intKey(g, `${arch}.token_shift_count`);
  const rescale = v7 ? 0 : intKey(g, `${arch}.rescale_every_n_layers`) ?? 0;
  if (shiftCount !== undefined && shiftCount !== 2) {
    throw new FormatError(
      path,
      `${arch}.token_shift_count`,
      `${shiftCount}: ${arch} models shift by 2 (llama.cpp asserts it); is this an ARWKV or ` +
        "RWKV6-Qwen2 hybrid?",
    );
  }
  if (v7 && !headSize) {
    throw new FormatError(path, `${arch}.wkv.head_size`, "missing (needed to shape r_k)");
  }
  const exposed: Exposed[] = [];
  const blockQuantized = new Map<string, BlockQuantized>();
  const add = (
    src: GgufTensor,
    name: string,
    shape: readonly number[],
    extra: Omit<Exposed, "info" | "src" | "kind"> = {},
  ) => {
    const t = src.type;
    const count = product(shape);
    const mul = extra.mul ?? 1;
    // Block-quantized when the values need no rearranging and the loader stores such a matrix
    // quantized (2-D, a large matrix or the embedding).
    const blocks = !extra.part && !extra.transpose && shape.length === 2 &&
      /(\.weight)$/.test(name) && !/\.ln[0-9a-z_]*\.weight$/.test(name) &&
      (t === GGML.Q4_0 || mapsOntoQ8(t));
    if (blocks) {
      const quant = t === GGML.Q4_0 ? "q4" : "q8";
      const [rows, cols] = shape;
      const scale: TensorInfo = {
        name: `${name}.qscale`,
        dtype: "F32",
        shape: [rows, cols / 32],
        byteLength: (rows * cols / 32) * 4,
      };
      const info: TensorInfo = quant === "q8"
        ? { name, dtype: "I8", shape: [rows, cols], byteLength: count }
        : { name, dtype: "U8", shape: [rows, cols / 2], byteLength: count / 2 };
      exposed.push({ info, src, kind: quant, ...extra });
      exposed.push({ info: scale, src, kind: "scale", ...extra });
      const q8_0 = t === GGML.Q8_0 ? { scaleMul: mul } : undefined;
      blockQuantized.set(name, { quant, rows, cols, scale, ...(q8_0 ? { q8_0 } : {}) });
      return;
    }
    if (!GGML_TYPES[t].decoded) {
      throw new FormatError(path, src.name, `ggml type ${ggmlTypeName(t)} is not read`);
    }
    const dtype: DType = t === GGML.F16 ? "F16" : t === GGML.BF16 ? "BF16" : "F32";
    const kind = t === GGML.F32 || t === GGML.F16 || t === GGML.BF16 ? "raw" : "f32";
    if (mul !== 1 && kind === "raw" && dtype !== "F32" && extra.transpose) {
      throw new FormatError(path, src.name, "internal: a rescaled 16-bit tensor is not transposed");
    }
    const byteLength = count * (dtype === "F32" ? 4 : 2);
    exposed.push({ info: { name, dtype, shape, byteLength }, src, kind, ...extra });
  };
  const transposed = (src: GgufTensor, name: string) => {
    const s = src.shape;
    if (s.length < 2 || s.length > 3) {
      throw new FormatError(path, src.name, `expected a matrix, shape is [${s}]`);
    }
    const batch = s.length === 3 ? s[0] : 1, rows = s[s.length - 2], cols = s[s.length - 1];
    add(src, name, s.length === 3 ? [batch, cols, rows] : [cols, rows], {
      transpose: { batch, rows, cols },
    });
  };
  const lerpParts = v7 ? X7 : X6;

  for (const src of g.tensors.values()) {
    const top = TOP[src.name];
    if (top) {
      add(src, top, top.endsWith(".weight") && src.shape.length === 2 ? src.shape : [src.count]);
      continue;
    }
    const m = /^blk\.(\d+)\.(.+)$/.exec(src.name);
    if (!m) throw new FormatError(path, src.name, `not a tensor of llama.cpp's ${arch} layout`);
    const layer = Number(m[1]), rest = m[2], b = `blocks.${layer}.`;
    if (layers !== undefined && layer >= layers) {
      throw new FormatError(path, src.name, `layer ${layer} but ${arch}.block_count is ${layers}`);
    }
    const n = src.count;
    if (rest === "time_mix_lerp_fused.weight") {
      if (src.shape[0] !== lerpParts.length || n % lerpParts.length !== 0) {
        throw new FormatError(
          path,
          src.name,
          `shape [${src.shape}], expected (${lerpParts.length}, 1, 1, C)`,
        );
      }
      lerpParts.forEach((x, index) =>
        add(src, b + "att." + x, [1, 1, n / lerpParts.length], {
          part: { index, parts: lerpParts.length },
        })
      );
      continue;
    }
    if (COMMON[rest]) {
      const name = b + COMMON[rest];
      const scaled = rescale > 0 &&
        (rest === "time_mix_output.weight" || rest === "channel_mix_value.weight");
      const mul = scaled ? 2 ** Math.floor(layer / rescale) : 1;
      add(src, name, src.shape, mul !== 1 ? { mul } : {});
      continue;
    }
    if (v7) {
      if (layer === 0 && /^time_mix_v[012]\.weight$/.test(rest)) continue; // placeholders
      if (VEC7[rest]) add(src, b + VEC7[rest], [1, 1, n]);
      else if (LOW7[rest]) transposed(src, b + LOW7[rest]);
      else if (rest === "time_mix_r_k.weight") {
        if (n % headSize! !== 0) {
          throw new FormatError(path, src.name, `${n} values are not heads of ${headSize}`);
        }
        add(src, b + "att.r_k", [n / headSize!, headSize!]);
      } else throw new FormatError(path, src.name, `not a tensor of llama.cpp's ${arch} layout`);
    } else {
      if (VEC6[rest]) add(src, b + VEC6[rest], [1, 1, n]);
      else if (LOW6[rest]) transposed(src, b + LOW6[rest]);
      else if (rest === "time_mix_first.weight") {
        add(src, b + "att.time_faaaa", src.shape.length === 2 ? src.shape : [n]);
      } else throw new FormatError(path, src.name, `not a tensor of llama.cpp's ${arch} layout`);
    }
  }

  const plans = new Map<string, Exposed>();
  const tensors = new Map<string, TensorInfo>();
  for (const e of exposed) {
    if (plans.has(e.info.name)) throw new FormatError(path, e.info.name, "tensor appears twice");
    plans.set(e.info.name, e);
    tensors.set(e.info.name, e.info);
  }
  const emb = tensors.get("emb.weight");
  const embCols = blockQuantized.get("emb.weight")?.cols ?? emb?.shape[1];
  if (embd !== undefined && emb && embCols !== embd) {
    throw new FormatError(
      path,
      `${arch}.embedding_length`,
      `${embd} but token_embd has rows of ${embCols}`,
    );
  }

  // Block-quantized tensors stream through one buffer of whole blocks, a chunk at a time: no
  // copy of a whole tensor is made; reading the integers yields the scales too (read them after).
  let chunk = new Uint8Array(0);
  // The scales of the matrix whose integers were just read (the loader reads them next).
  let lastScales: { name: string; scales: Float32Array } | undefined;
  const eachChunk = async (
    src: GgufTensor,
    use: (raw: Uint8Array, firstBlock: number, blocks: number) => void,
  ) => {
    const size = GGML_TYPES[src.type].blockBytes, nb = src.count / 32;
    const per = Math.max(1, Math.floor(CHUNK_BYTES / size));
    if (chunk.length < per * size) chunk = new Uint8Array(per * size);
    for (let b0 = 0; b0 < nb; b0 += per) {
      const n = Math.min(per, nb - b0);
      use(await g.readRaw(src.name, chunk.subarray(0, n * size), b0 * size), b0, n);
    }
  };

  const splitter = new BlockSplitter();
  let lastFused: { src: GgufTensor; dtype: DType; values: Float32Array | Uint16Array } | undefined;

  const read = async (name: string, into?: Uint8Array): Promise<Uint8Array> => {
    const e = plans.get(name);
    if (!e) throw new FormatError(path, name, "no such tensor");
    if (into && into.length !== e.info.byteLength) {
      throw new FormatError(
        path,
        name,
        `buffer of ${into.length} bytes, tensor has ${e.info.byteLength}`,
      );
    }
    const out = into ?? new Uint8Array(e.info.byteLength);
    const { src } = e;
    const mul = e.mul ?? 1;
    switch (e.kind) {
      case "scale": {
        // The scales of the matrix whose integers were just read come from that same pass.
        let scales = lastScales?.name === name ? lastScales.scales : undefined;
        if (!scales) {
          const all = new Float32Array(src.count / 32);
          await eachChunk(src, (raw, b0, k) => {
            blockScales(raw, src.type, k * 32, all.subarray(b0, b0 + k), mul);
          });
          scales = all;
        }
        lastScales = undefined;
        out.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
        return out;
      }
      case "q8":
      case "q4": {
        // Integers straight into `out`, chunk by chunk; the scales kept for the read that follows.
        const scales = new Float32Array(src.count / 32);
        const m = plans.get(`${name}.qscale`)?.mul ?? 1;
        const same = e.kind === "q8" ? src.type === GGML.Q8_0 : src.type === GGML.Q4_0;
        if (same && BlockSplitter.supported) {
          const raw = (into: Uint8Array, at: number) => g.readRaw(src.name, into, at);
          await splitter.read(raw, src.type, src.count, out, scales, m);
        } else {
          await eachChunk(src, (raw, b0, k) => {
            repack(e.kind, raw, src.type, b0, k, out);
            blockScales(raw, src.type, k * 32, scales.subarray(b0, b0 + k), m);
          });
        }
        lastScales = { name: `${name}.qscale`, scales };
        return out;
      }
      case "raw":
        if (!e.part && !e.transpose && mul === 1) return await g.readRaw(src.name, out);
    }
    // Decode to values, rearrange, encode in the exposed dtype (the parts of a fused tensor,
    // read one after another, from one decoding of it).
    let values: Float32Array | Uint16Array;
    if (e.part && lastFused?.src === src && lastFused.dtype === e.info.dtype) {
      values = lastFused.values;
    } else {
      const raw = await g.readRaw(src.name);
      if (e.info.dtype === "F32") values = dequantizeGgmlType(raw, src.type, src.count);
      else values = new Uint16Array(raw.buffer, raw.byteOffset, src.count);
      lastFused = e.part ? { src, dtype: e.info.dtype, values } : undefined;
    }
    if (e.part) {
      const len = src.count / e.part.parts;
      values = values.subarray(e.part.index * len, (e.part.index + 1) * len);
    }
    if (e.transpose) values = swapLastAxes(values, e.transpose);
    if (mul !== 1) values = scaled(path, src.name, values, e.info.dtype, mul);
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return out;
  };

  return {
    path,
    format: "gguf",
    tensors,
    metadata: metadataObject(g),
    blockQuantized,
    read,
    readBlocks(name: string, into: Uint8Array, offset = 0): Promise<Uint8Array> {
      const e = plans.get(name);
      if (!blockQuantized.get(name)?.q8_0 || !e) {
        return Promise.reject(new FormatError(path, name, "not a matrix of Q8_0 blocks"));
      }
      return g.readRaw(e.src.name, into, offset);
    },
    readTransposed(name: string, into?: Uint8Array): Promise<Uint8Array | undefined> {
      const e = plans.get(name);
      // stored as llama.cpp keeps it: the official matrix transposed, as it is
      const stored = e?.kind === "raw" && e.transpose?.batch === 1 && !e.part &&
        (e.mul ?? 1) === 1;
      if (!stored) return Promise.resolve(undefined);
      return g.readRaw(e.src.name, into?.subarray(0, e.info.byteLength));
    },
    close: () => {
      lastFused = undefined;
      chunk = new Uint8Array(0);
      splitter.release();
      lastScales = undefined;
      g.close();
    },
  };
}

/** Re-packs blocks [b0, b0 + k) of a Q8_0/Q5_0/Q4_0 chunk into our q8 or q4 bytes `out`. */
function repack(
  kind: Exposed["kind"],
  raw: Uint8Array,
  type: number,
  b0: number,
  k: number,
  out: Uint8Array,
): void {
  if (kind === "q4") toQ4(raw, k * 32, out.subarray(b0 * 16, (b0 + k) * 16));
  else toQ8(raw, type, k * 32, new Int8Array(out.buffer, out.byteOffset + b0 * 32, k * 32));
}

/** Values times a power of two, in their own type; a FormatError when that is not exact. */
function scaled(
  path: string,
  name: string,
  values: Float32Array | Uint16Array,
  dtype: DType,
  mul: number,
): Float32Array | Uint16Array {
  if (values instanceof Float32Array) return values.map((x) => x * mul);
  const wide = dtype === "F16" ? f16ToF32(values) : bf16ToF32(values);
  for (let i = 0; i < wide.length; i++) wide[i] *= mul;
  const back = dtype === "F16" ? f32ToF16(wide) : f32ToBf16(wide);
  const check = dtype === "F16" ? f16ToF32(back) : bf16ToF32(back);
  for (let i = 0; i < wide.length; i++) {
    if (check[i] !== wide[i] && !(Number.isNaN(check[i]) && Number.isNaN(wide[i]))) {
      throw new FormatError(
        path,
        name,
        `value ${wide[i]} (rescaled by ${mul}) does not fit ${dtype}: the file is not a real ` +
          "rescaled RWKV-6 model",
      );
    }
  }
  return back;
}
