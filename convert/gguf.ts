/**
 * An official RWKV-6 or RWKV-7 checkpoint (any format we read) → a GGUF file llama.cpp and Ollama
 * load: llama.cpp's `rwkv6` / `rwkv7` tensor names, shapes, transforms and metadata, as its
 * converter (`convert_hf_to_gguf.py`, Rwkv6Model / Rwkv7Model) and `llama-quantize` write them
 * (see `lib/formats/gguf_rwkv.ts` for the reading side, which undoes each transform), with the
 * tokenizer in the file (`tokenizer.ggml.model = "rwkv"`, the World vocabulary or bytes).
 *
 * Types (`type`): the large matrices (`token_embd`, `output`, the time-mix and channel-mix
 * projections) in F16, BF16, Q8_0 or Q4_0 (a matrix whose rows are not whole blocks of 32 falls
 * back to F16, as llama.cpp's converter does); the low-rank matrices of RWKV-7 (`a1 a2 v1 v2 g1
 * g2`) in F16 (BF16 for `bf16`), as `llama-quantize` leaves them; vectors, the norms, the fused
 * token-shift mixes and the low-rank `w1 w2` / RWKV-6 `time_mix_w1 w2 decay_w1 w2` in F32, as
 * llama.cpp's converter keeps them. Q8_0 and Q4_0 are ggml's reference quantizers
 * (`quantize_row_q8_0_ref`; Q4_0 as gguf-py computes it).
 * @module
 */

import { basename } from "node:path";
import { FormatError, UsageError } from "../lib/errors.ts";
import { bytesRepr } from "../lib/formats/pyrepr.ts";
import type { Checkpoint, TensorInfo } from "../lib/formats/checkpoint.ts";
import { f32ToBf16, f32ToF16, toFloat32 } from "../lib/formats/dtype.ts";
import { GGML, quantizeQ4_0, quantizeQ8_0 } from "../lib/formats/ggml_quants.ts";
import { GGUF_VALUE } from "../lib/formats/gguf.ts";
import { COMMON, LOW6, LOW7, TOP, VEC6, VEC7, X6, X7 } from "../lib/formats/gguf_rwkv.ts";
import { type GgufEntry, type GgufTensorToWrite, writeGguf } from "../lib/formats/gguf_write.ts";
import { detectSpec, type ModelSpec } from "../lib/spec/spec.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";

/**
 * The type of the large matrices in a GGUF we write.
 * @example
 * ```ts
 * import type { GgufType } from "./gguf.ts";
 * const t: GgufType = "q8_0";
 * ```
 */
export type GgufType = "f16" | "bf16" | "q8_0" | "q4_0";

/**
 * Options of {@link writeGgufModel}.
 * @example
 * ```ts
 * import type { WriteGgufModelOptions } from "./gguf.ts";
 * const opts: WriteGgufModelOptions = { type: "q8_0", tokenizer: "rwkv_vocab_v20230424.txt" };
 * ```
 */
export interface WriteGgufModelOptions {
  /** Type of the large matrices (default f16). */
  type?: GgufType;
  /**
   * The vocabulary to put in the file: a World vocabulary file (`rwkv_vocab_v20230424.txt`) or
   * `"bytes"`; default: `bytes` for a vocabulary of 256, else the World file found beside the
   * checkpoint.
   */
  tokenizer?: string;
  /** `general.name` (default: the checkpoint's file name without extension). */
  name?: string;
  /** Replace an existing output. */
  force?: boolean;
  /** Bytes of tensor data written so far, of the total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

const TYPES: Readonly<Record<GgufType, { main: number; lowRank: number; fileType: number }>> = {
  f16: { main: GGML.F16, lowRank: GGML.F16, fileType: 1 },
  bf16: { main: GGML.BF16, lowRank: GGML.BF16, fileType: 32 },
  q8_0: { main: GGML.Q8_0, lowRank: GGML.F16, fileType: 7 },
  q4_0: { main: GGML.Q4_0, lowRank: GGML.F16, fileType: 2 },
};

/** RWKV-6 files store every sixth layer's output projections halved (llama.cpp's converter). */
const RESCALE_EVERY = 6;

/**
 * The text llama.cpp's converter stores for a token: Python's `repr()` of its bytes without the
 * `b'…'` quotes.
 * @example
 * ```ts
 * import { escapeRwkvToken } from "./gguf.ts";
 * console.log(escapeRwkvToken(Uint8Array.of(0x27, 0x0a, 0xff))); // "'\\n\\xff"
 * ```
 */
export function escapeRwkvToken(bytes: Uint8Array): string {
  return bytesRepr(bytes).slice(2, -1);
}

/** The token list and types llama.cpp's converter writes for a vocabulary of `n`. */
async function vocabulary(
  ck: Checkpoint,
  n: number,
  given: string | undefined,
): Promise<{ tokens: string[]; types: number[]; world: boolean }> {
  const which = given ?? await findTokenizerFor(ck.path, n === 256 ? 256 : 65536);
  if (!which) {
    throw new UsageError(
      `no World vocabulary (rwkv_vocab_v20230424.txt) beside ${ck.path}: pass --tokenizer`,
    );
  }
  const tok = await loadTokenizer(which);
  if (tok.kind === "bytes") {
    if (n !== 256) throw new UsageError(`a byte vocabulary has 256 tokens, the model ${n}`);
    return {
      tokens: Array.from({ length: 256 }, (_, i) => escapeRwkvToken(Uint8Array.of(i))),
      types: new Array(256).fill(1),
      world: false,
    };
  }
  if (tok.kind !== "world") {
    throw new UsageError(`${which}: llama.cpp's rwkv models take the World vocabulary or bytes`);
  }
  // <s> at 0 (control), the file's tokens, then [PADi] (unused) up to the model's size.
  const tokens = ["<s>"], types = [3];
  for (let id = 1; id < n; id++) {
    if (id < tok.vocabSize && tok.decodeBytes([id]).length > 0) {
      tokens.push(escapeRwkvToken(tok.decodeBytes([id])));
      types.push(1);
    } else {
      tokens.push(`[PAD${id}]`);
      types.push(5);
    }
  }
  return { tokens, types, world: true };
}

/** Inverse of a name table: official suffix → GGUF suffix. */
function invert(t: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(t).map(([g, o]) => [o, g]));
}

/**
 * Writes `ck` (an official RWKV-6 or RWKV-7 checkpoint) as a GGUF file at `out`, atomically,
 * tensor by tensor.
 * @example
 * ```ts
 * import { openCheckpoint } from "../lib/formats/open.ts";
 * const ck = await openCheckpoint("RWKV-x070-World-0.1B.pth");
 * await writeGgufModel(ck, "rwkv7-0.1b-q8_0.gguf", { type: "q8_0" });
 * ck.close();
 * ```
 */
export async function writeGgufModel(
  ck: Checkpoint,
  out: string,
  options: WriteGgufModelOptions = {},
): Promise<void> {
  const type = options.type ?? "f16";
  if (!(type in TYPES)) {
    throw new UsageError(`GGUF type must be f16, bf16, q8_0 or q4_0, not ${type}`);
  }
  const spec = detectSpec(ck.tensors, ck.path);
  if (spec.version !== "6" && spec.version !== "7") {
    throw new UsageError(
      `${ck.path} is RWKV-${spec.version}: llama.cpp runs RWKV-6 and RWKV-7 (rwkv6, rwkv7)`,
    );
  }
  if (ck.blockQuantized?.size || (ck.metadata as Record<string, unknown>).format) {
    throw new UsageError(`${ck.path} is quantized: convert from the float checkpoint instead`);
  }
  const v7 = spec.version === "7", arch = v7 ? "rwkv7" : "rwkv6";
  const t = TYPES[type];
  const vocab = await vocabulary(ck, spec.vocab, options.tokenizer);
  const tensors = plan(ck, spec, t);
  const shape = (n: string) => ck.tensors.get(n)!.shape;
  const u32 = (key: string, value: number): GgufEntry => ({
    key: `${arch}.${key}`,
    type: GGUF_VALUE.UINT32,
    value,
  });
  const entries: GgufEntry[] = [
    { key: "general.architecture", type: GGUF_VALUE.STRING, value: arch },
    { key: "general.type", type: GGUF_VALUE.STRING, value: "model" },
    {
      key: "general.name",
      type: GGUF_VALUE.STRING,
      value: options.name ?? basename(ck.path).replace(/\.[^.]*$/, ""),
    },
    u32("context_length", 1048576),
    u32("embedding_length", spec.embd),
    u32("block_count", spec.layers),
    { key: `${arch}.attention.layer_norm_epsilon`, type: GGUF_VALUE.FLOAT32, value: 1e-5 },
    u32("wkv.head_size", spec.headSize),
    u32("feed_forward_length", spec.ffnDim),
    u32("attention.head_count", 0),
    u32("token_shift_count", 2),
  ];
  if (v7) {
    const rank = (n: string) => shape(`blocks.${spec.layers > 1 ? 1 : 0}.att.${n}`)[1];
    entries.push(
      u32("attention.decay_lora_rank", rank("w1")),
      u32("attention.iclr_lora_rank", rank("a1")),
      u32(
        "attention.value_residual_mix_lora_rank",
        spec.layers > 1 ? shape("blocks.1.att.v1")[1] : rank("a1"),
      ),
      u32("attention.gate_lora_rank", rank("g1")),
    );
  } else {
    entries.push(
      u32("rescale_every_n_layers", RESCALE_EVERY),
      u32("time_mix_extra_dim", shape("blocks.0.att.time_maa_w1")[1] / 5),
      u32("time_decay_extra_dim", shape("blocks.0.att.time_decay_w1")[1]),
    );
  }
  entries.push(
    { key: "tokenizer.ggml.model", type: GGUF_VALUE.STRING, value: "rwkv" },
    {
      key: "tokenizer.ggml.tokens",
      type: GGUF_VALUE.ARRAY,
      arrayType: GGUF_VALUE.STRING,
      value: vocab.tokens,
    },
    {
      key: "tokenizer.ggml.token_type",
      type: GGUF_VALUE.ARRAY,
      arrayType: GGUF_VALUE.INT32,
      value: vocab.types,
    },
    { key: "tokenizer.ggml.bos_token_id", type: GGUF_VALUE.UINT32, value: 0 },
    { key: "tokenizer.ggml.eos_token_id", type: GGUF_VALUE.UINT32, value: 0 },
  );
  // llama.cpp's converter: "\n\n" (261) ends a turn, so chat stops there.
  if (vocab.world && spec.vocab > 261) {
    entries.push({ key: "tokenizer.ggml.eot_token_id", type: GGUF_VALUE.UINT32, value: 261 });
  }
  entries.push(
    { key: "tokenizer.chat_template", type: GGUF_VALUE.STRING, value: "rwkv-world" },
    { key: "general.quantization_version", type: GGUF_VALUE.UINT32, value: 2 },
    { key: "general.file_type", type: GGUF_VALUE.UINT32, value: t.fileType },
  );
  await writeGguf(out, entries, tensors, {
    overwrite: options.force ?? false,
    onProgress: options.onProgress,
  });
}

/** Every GGUF tensor, in llama.cpp's layout, from the official ones. */
function plan(
  ck: Checkpoint,
  spec: ModelSpec,
  t: { main: number; lowRank: number },
): GgufTensorToWrite[] {
  const v7 = spec.version === "7";
  const info = (n: string): TensorInfo => {
    const i = ck.tensors.get(n);
    if (!i) throw new FormatError(ck.path, n, "missing (needed by llama.cpp's layout)");
    return i;
  };
  const values = async (n: string) => toFloat32(await ck.read(n), info(n).dtype);
  const out: GgufTensorToWrite[] = [];
  /** A tensor of `type`, dims innermost first, values from `get`. */
  const put = (name: string, type: number, dims: number[], get: () => Promise<Float32Array>) => {
    const main = type === GGML.Q8_0 || type === GGML.Q4_0;
    const ty = main && dims[0] % 32 !== 0 ? GGML.F16 : type;
    out.push({ name, type: ty, dims, data: async () => encode(ck.path, name, ty, await get()) });
  };
  const vector = (g: string, o: string) =>
    put(g, GGML.F32, [info(o).shape.reduce((a, b) => a * b, 1)], () => values(o));
  /** (rows, cols) official, stored as is: dims [cols, rows]. */
  const matrix = (g: string, o: string, type: number, mul = 1) => {
    const [rows, cols] = info(o).shape.filter((d) => d !== 1);
    put(g, type, [cols, rows], async () => {
      const v = await values(o);
      return mul === 1 ? v : v.map((x) => x * mul);
    });
  };
  /** Official (..., rows, cols) stored with its last two axes swapped. */
  const swapped = (g: string, o: string, type: number) => {
    const s = info(o).shape;
    const batch = s.length === 3 ? s[0] : 1, rows = s[s.length - 2], cols = s[s.length - 1];
    put(g, type, s.length === 3 ? [rows, cols, batch] : [rows, cols], async () => {
      const v = await values(o), w = new Float32Array(v.length), plane = rows * cols;
      for (let b = 0; b < batch; b++) {
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) w[b * plane + c * rows + r] = v[b * plane + r * cols + c];
        }
      }
      return w;
    });
  };
  const top = invert(TOP);
  matrix("token_embd.weight", "emb.weight", t.main);
  vector("token_embd_norm.weight", "blocks.0.ln0.weight");
  vector("token_embd_norm.bias", "blocks.0.ln0.bias");
  const common = invert(COMMON), vec = invert(v7 ? VEC7 : VEC6), low = invert(v7 ? LOW7 : LOW6);
  const parts = v7 ? X7 : X6;
  for (let i = 0; i < spec.layers; i++) {
    const b = `blocks.${i}.`, g = `blk.${i}.`;
    const mul = v7 ? 1 : 2 ** -Math.floor(i / RESCALE_EVERY);
    for (const [o, gg] of Object.entries(common)) {
      if (!ck.tensors.has(b + o)) continue; // gate, ffn.receptance: RWKV-6 only
      if (info(b + o).shape.filter((d) => d !== 1).length === 2) {
        const scaled = o === "att.output.weight" || o === "ffn.value.weight";
        matrix(g + gg, b + o, t.main, scaled ? mul : 1);
      } else vector(g + gg, b + o);
    }
    // the token-shift mixes, stacked
    const C = spec.embd;
    put(g + "time_mix_lerp_fused.weight", GGML.F32, [C, 1, 1, parts.length], async () => {
      const f = new Float32Array(C * parts.length);
      for (let p = 0; p < parts.length; p++) f.set(await values(b + "att." + parts[p]), p * C);
      return f;
    });
    if (!v7) vector(g + "time_mix_lerp_x.weight", b + "att.time_maa_x");
    for (const [o, gg] of Object.entries(vec)) {
      if (gg.startsWith("time_mix_lerp_")) continue; // fused above (time_maa_x apart)
      if (v7 && i === 0 && o === "att.v0") continue;
      vector(g + gg, b + o);
    }
    for (const [o, gg] of Object.entries(low)) {
      if (v7 && i === 0 && /^att\.v[12]$/.test(o)) continue;
      const f32 = !v7 || /^att\.w[12]$/.test(o);
      swapped(g + gg, b + o, f32 ? GGML.F32 : t.lowRank);
    }
    if (v7) {
      vector(g + "time_mix_r_k.weight", b + "att.r_k");
      if (i === 0) {
        // llama.cpp requires layer 0's (unused) v0/v1/v2 with a0/a1/a2's shapes: its converter
        // writes copies of those.
        vector(g + "time_mix_v0.weight", b + "att.a0");
        swapped(g + "time_mix_v1.weight", b + "att.a1", t.lowRank);
        swapped(g + "time_mix_v2.weight", b + "att.a2", t.lowRank);
      }
    } else {
      const [H, N] = info(b + "att.time_faaaa").shape;
      put(g + "time_mix_first.weight", GGML.F32, [N, H], () => values(b + "att.time_faaaa"));
    }
  }
  vector(top["ln_out.weight"], "ln_out.weight");
  vector(top["ln_out.bias"], "ln_out.bias");
  matrix(top["head.weight"], "head.weight", t.main);
  return out;
}

/** Values → the bytes of a ggml type. */
function encode(file: string, name: string, type: number, v: Float32Array): Uint8Array {
  switch (type) {
    case GGML.F32:
      return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    case GGML.BF16:
      return new Uint8Array(f32ToBf16(v).buffer);
    case GGML.F16: {
      const h = f32ToF16(v);
      for (let i = 0; i < h.length; i++) {
        if ((h[i] & 0x7c00) === 0x7c00 && Number.isFinite(v[i])) {
          throw new FormatError(file, name, `value ${v[i]} overflows f16: write bf16 instead`);
        }
      }
      return new Uint8Array(h.buffer);
    }
    case GGML.Q8_0:
      return quantizeQ8_0(v);
    case GGML.Q4_0:
      return quantizeQ4_0(v);
  }
  throw new RangeError(`internal: type ${type}`);
}
