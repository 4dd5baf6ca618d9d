/**
 * rwkv.cpp model files (`.bin`, magic `ggmf`), read back into the official RWKV-LM layout.
 *
 * The file (rwkv.cpp `docs/FILE_FORMAT.md`): six little-endian uint32 (magic 0x67676d66,
 * version 100 or 101, n_vocab, n_embed, n_layer, data type), then tensors until the end of the
 * file, each as uint32 dim count (1..3), uint32 name length, uint32 data type, the dims in ggml
 * order (innermost first, i.e. PyTorch's shape reversed), the UTF-8 name, and the data.
 *
 * Data types: 0 FP32, 1 FP16, 2 Q4_0, 3 Q4_1, 7 Q5_0, 8 Q5_1, 9 Q8_0. Codes 4, 5, 6 (Q4_1_O,
 * Q4_2, Q4_3) are formats ggml removed and are refused, as rwkv.cpp refuses them; quantized
 * data in a version-100 file predates ggml's May 2023 block layouts and is refused too.
 * Quantized blocks hold 32 consecutive values of a row (ggml layouts, scales as IEEE half):
 * - Q4_0 (18 bytes): d, 16 bytes of nibbles; value j = (low nibble of byte j − 8)·d, value
 *   j+16 = (high nibble of byte j − 8)·d.
 * - Q4_1 (20 bytes): d, m, 16 bytes of nibbles; value = q·d + m.
 * - Q5_0 (22 bytes): d, uint32 qh (bit j is the fifth bit of value j), nibbles as Q4_0;
 *   value = (q − 16)·d.
 * - Q5_1 (24 bytes): d, m, qh, nibbles; value = q·d + m.
 * - Q8_0 (34 bytes): d, 32 int8; value = q·d.
 *
 * rwkv.cpp's converter (`convert_pytorch_to_ggml.py`) changes some tensors; this reader undoes
 * each change, so every tensor has the name, shape and value convention of the official `.pth`:
 * - every `.time_*` tensor was squeezed: `time_mix_*`/`time_maa_*` go back to (1, 1, C);
 * - RWKV-4: `time_decay` was stored as `-exp(w)`: restored as `log(-x)`;
 * - RWKV-5: `time_decay` was `exp(-exp(w))` (shape (H,1,1) or (H,N,1)) and `time_first` was
 *   `exp(u)` (H,1,1): restored as `log(-log(x))` and `log(x)`, shapes (H) or (H, N);
 *   `time_faaaa` (H,N,1) → (H, N);
 * - RWKV-6: `time_maa_w1`, `time_decay_w1`, `time_decay_w2` were transposed and
 *   `time_maa_w2` had its last two axes swapped: swapped back; `time_decay` (H, N, 1) →
 *   (1, 1, C); `time_faaaa` (H, N, 1) → (H, N);
 * - RWKV-7: `att.x_r … att.x_g` were concatenated into `att.x_rwkvag` (6, 1, C): split back
 *   into six (1, 1, C) tensors; `att.{w,a,v,g}{1,2}` were transposed: transposed back.
 * The embedding is stored as is (rwkv.cpp applies `ln0` at run time, as the official code).
 *
 * FP32 tensors are exposed as F32 and FP16 as F16 (unless a value had to be restored, then
 * F32). Q8_0, Q5_0 and Q4_0 matrices map exactly onto our q8/q4 layouts and are exposed as GGUF's
 * are (`Checkpoint.blockQuantized`: integers I8/U8 plus a `.qscale` F32 tensor), so they load
 * as q8/q4 without a float copy; other quantized tensors are dequantized on read and exposed as
 * F32.
 * @module
 */

import { FormatError } from "../errors.ts";
import type {
  BlockQuantized,
  Checkpoint,
  OpenCheckpointOptions,
  TensorInfo,
} from "./checkpoint.ts";
import { f16ToF32 } from "./dtype.ts";
import {
  blockScales,
  BlockSplitter,
  dequantizeGgmlType,
  GGML,
  mapsOntoQ8,
  toQ4,
  toQ8,
} from "./ggml_quants.ts";
import { swapLastAxes } from "./_transpose.ts";
import { RandomAccessFile } from "./file.ts";
import { type Limits, overBudget, resolveLimits } from "./_limits.ts";
import {
  type Exposed,
  product,
  restore,
  type RwkvCppMetadata,
  type Stored,
} from "./_rwkvcpp_restore.ts";

/** The magic number of rwkv.cpp files ("ggmf"). */
export type { RwkvCppMetadata } from "./_rwkvcpp_restore.ts";

export const RWKVCPP_MAGIC = 0x67676d66;

/** rwkv.cpp data type codes and names. */
const TYPE_NAMES = [
  "FP32",
  "FP16",
  "Q4_0",
  "Q4_1",
  "Q4_1_O",
  "Q4_2",
  "Q4_3",
  "Q5_0",
  "Q5_1",
  "Q8_0",
];

/** Values per block and bytes per block of each supported type code. */
const BLOCK: Readonly<Record<number, { values: number; bytes: number }>> = {
  0: { values: 1, bytes: 4 },
  1: { values: 1, bytes: 2 },
  2: { values: 32, bytes: 18 },
  3: { values: 32, bytes: 20 },
  7: { values: 32, bytes: 22 },
  8: { values: 32, bytes: 24 },
  9: { values: 32, bytes: 34 },
};

/** Names longer than this are refused (real ones are a few dozen bytes). */
const MAX_NAME_BYTES = 4096;
/** Largest dimension accepted (rwkv.cpp stores dims as int32). */
const MAX_DIM = 0x7fffffff;
/** Tensor headers are read through a window of this many bytes, not one read per header. */
const HEADER_WINDOW = 1 << 20;

function typeName(code: number): string {
  return TYPE_NAMES[code] ?? `code ${code}`;
}

/** Why a data type code cannot be read, or undefined when it can. */
function typeProblem(code: number, version: number): string | undefined {
  if (code >= 4 && code <= 6) {
    return `data type ${typeName(code)} (${code}) was removed from ggml; rwkv.cpp cannot load ` +
      `it either: re-quantize the model from its .pth`;
  }
  if (!Object.hasOwn(BLOCK, code)) {
    return `unknown data type ${code} (known: 0 FP32, 1 FP16, 2 Q4_0, 3 Q4_1, 7 Q5_0, 8 Q5_1, 9 Q8_0)`;
  }
  if (code >= 2 && version !== 101) {
    return `quantized data (${typeName(code)}) in a version-${version} file uses ggml's old ` +
      `block layout, which rwkv.cpp no longer reads: re-quantize with a current rwkv.cpp`;
  }
  return undefined;
}

/**
 * Opens an rwkv.cpp model file: validates the header and every tensor header (nothing else is
 * read), and exposes the tensors under their official names, shapes and value conventions.
 * Every problem is a FormatError naming the file and the field or tensor.
 * @example
 * ```ts
 * import { createReferenceModel } from "../backend/reference/mod.ts";
 * const ck = await openRwkvCpp("rwkv-4-169m-Q5_1.bin");
 * const model = await createReferenceModel(ck); // runs as the official .pth would
 * ck.close();
 * ```
 */
export async function openRwkvCpp(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  const limits = resolveLimits(options.limits);
  const file = await RandomAccessFile.open(path);
  try {
    const { stored, meta } = await scan(file, limits);
    const { exposed, blockQuantized } = asBlocks(restore(path, stored, meta));
    const tensors = new Map<string, TensorInfo>();
    const plans = new Map<string, Plan>();
    for (const e of exposed) {
      if (plans.has(e.info.name)) {
        throw new FormatError(path, e.info.name, "tensor appears twice");
      }
      plans.set(e.info.name, e);
      tensors.set(e.info.name, e.info);
    }
    // Built on first use: an object of hundreds of thousands of keys is slow to fill.
    let types: Record<string, string> | undefined;
    const metadata: RwkvCppMetadata = {
      ...meta,
      get tensor_types() {
        return types ??= Object.fromEntries(
          exposed.map((e) => [e.info.name, typeName(e.src.type)]),
        );
      },
    };
    const emb = tensors.get("emb.weight");
    const embCols = blockQuantized.get("emb.weight")?.cols ?? emb?.shape[1]; // q4: 2 a byte
    if (
      emb && (emb.shape.length !== 2 || emb.shape[0] !== meta.n_vocab || embCols !== meta.n_embed)
    ) {
      throw new FormatError(
        path,
        "emb.weight",
        `shape [${emb.shape}] contradicts the header (n_vocab ${meta.n_vocab}, ` +
          `n_embed ${meta.n_embed})`,
      );
    }
    // Q8_0/Q4_0/Q5_0 matrices as our q8/q4 (as GGUF's): the integers into `into`, their scales
    // kept for the read of `.qscale` that follows.
    const splitter = new BlockSplitter();
    let lastScales: { name: string; scales: Float32Array } | undefined;
    const readBlocks = async (e: Plan, into?: Uint8Array): Promise<Uint8Array> => {
      const out = into ?? new Uint8Array(e.info.byteLength);
      const { src } = e, type = GGML_CODE[src.type];
      if (e.kind === "scale") {
        let scales = lastScales?.name === e.info.name ? lastScales.scales : undefined;
        if (!scales) {
          scales = new Float32Array(src.count / 32);
          blockScales(await file.readAt(src.offset, src.bytes, src.name), type, src.count, scales);
        }
        lastScales = undefined;
        out.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
        return out;
      }
      const scales = new Float32Array(src.count / 32);
      if (type !== GGML.Q5_0 && BlockSplitter.supported) {
        const raw = (buf: Uint8Array, at: number) => file.readAt(src.offset + at, buf, src.name);
        await splitter.read(raw, type, src.count, out, scales);
      } else {
        const raw = await file.readAt(src.offset, src.bytes, src.name);
        if (e.kind === "q4") toQ4(raw, src.count, out);
        else toQ8(raw, type, src.count, new Int8Array(out.buffer, out.byteOffset, src.count));
        blockScales(raw, type, src.count, scales);
      }
      lastScales = { name: `${e.info.name}.qscale`, scales };
      return out;
    };
    return {
      path,
      format: "rwkv.cpp",
      tensors,
      metadata: metadata as unknown as Record<string, unknown>,
      read(name: string, into?: Uint8Array): Promise<Uint8Array> {
        const e = plans.get(name);
        if (!e) return Promise.reject(new FormatError(path, name, "no such tensor"));
        if (into && into.length !== e.info.byteLength) {
          return Promise.reject(
            new FormatError(
              path,
              name,
              `buffer of ${into.length} bytes, tensor has ${e.info.byteLength}`,
            ),
          );
        }
        if (e.kind) return readBlocks(e, into);
        return readExposed(file, e, into);
      },
      blockQuantized,
      readBlocks(name: string, into: Uint8Array, offset = 0): Promise<Uint8Array> {
        const e = plans.get(name);
        if (!e || !blockQuantized.get(name)?.q8_0) {
          return Promise.reject(new FormatError(path, name, "not a matrix of Q8_0 blocks"));
        }
        if (offset < 0 || offset + into.length > e.src.bytes) {
          return Promise.reject(
            new FormatError(path, name, `range ${offset}+${into.length} outside its blocks`),
          );
        }
        return file.readAt(e.src.offset + offset, into, name);
      },
      close: () => {
        lastScales = undefined;
        splitter.release();
        file.close();
      },
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** Reads and validates the file header and every tensor header. */
async function scan(
  file: RandomAccessFile,
  limits: Limits,
): Promise<{ stored: Stored[]; meta: Omit<RwkvCppMetadata, "tensor_types"> }> {
  const path = file.path;
  if (file.size < 24) {
    throw new FormatError(path, "header", `file has ${file.size} bytes, the header needs 24`);
  }
  const h = new DataView((await file.readAt(0, 24, "header")).buffer);
  const magic = h.getUint32(0, true);
  if (magic !== RWKVCPP_MAGIC) {
    throw new FormatError(
      path,
      "magic",
      `0x${magic.toString(16).padStart(8, "0")} is not rwkv.cpp's 0x67676d66 ("ggmf")`,
    );
  }
  const version = h.getUint32(4, true);
  if (version !== 100 && version !== 101) {
    throw new FormatError(path, "version", `file version ${version} unsupported (100, 101 are)`);
  }
  const [nVocab, nEmbed, nLayer, dataType] = [8, 12, 16, 20].map((o) => h.getUint32(o, true));
  for (
    const [field, v] of [["n_vocab", nVocab], ["n_embed", nEmbed], ["n_layer", nLayer]] as const
  ) {
    if (v < 1 || v > MAX_DIM) throw new FormatError(path, field, `absurd value ${v}`);
  }
  const headerProblem = typeProblem(dataType, version);
  if (headerProblem) throw new FormatError(path, "data_type", headerProblem);

  const stored: Stored[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // Headers are parsed synchronously from a window of the file, refilled only when the next
  // header may run past it: one read per megabyte of headers, not two per tensor.
  let win: Uint8Array = new Uint8Array(0), winAt = 0;
  let wv = new DataView(win.buffer);
  const maxHeader = 12 + 3 * 4 + MAX_NAME_BYTES;
  /** Parses headers from `offset` while they surely fit the window; returns where it stopped. */
  const parseWindow = (offset: number): number => {
    const winEnd = winAt + win.length;
    while (offset < file.size && (offset + maxHeader <= winEnd || winEnd === file.size)) {
      const where = () => `tensor #${stored.length} at byte ${offset}`;
      if (file.size - offset < 12) {
        throw new FormatError(
          path,
          where(),
          `${file.size - offset} stray bytes at the end (truncated?)`,
        );
      }
      if (stored.length >= limits.tensors) {
        throw overBudget(path, "tensors", limits.tensors, "the number of tensors");
      }
      const th = offset - winAt;
      const nDims = wv.getUint32(th, true);
      const nameLength = wv.getUint32(th + 4, true);
      const type = wv.getUint32(th + 8, true);
      if (nDims < 1 || nDims > 3) {
        throw new FormatError(path, where(), `dim count ${nDims} (rwkv.cpp tensors have 1 to 3)`);
      }
      if (nameLength < 1 || nameLength > MAX_NAME_BYTES) {
        throw new FormatError(path, where(), `absurd name length ${nameLength}`);
      }
      const restLength = nDims * 4 + nameLength;
      if (offset + 12 + restLength > file.size) {
        throw new FormatError(
          path,
          where(),
          "tensor header runs past the end of the file (truncated?)",
        );
      }
      const ro = th + 12;
      const dims: number[] = [];
      for (let i = 0; i < nDims; i++) dims.push(wv.getUint32(ro + i * 4, true));
      let name: string;
      try {
        name = utf8(decoder, win.subarray(ro + nDims * 4, ro + restLength));
      } catch {
        throw new FormatError(path, where(), "tensor name is not valid UTF-8");
      }
      const problem = typeProblem(type, version);
      if (problem) throw new FormatError(path, name, problem);
      for (const d of dims) {
        if (d < 1 || d > MAX_DIM) {
          throw new FormatError(path, name, `absurd dims [${dims}] (ggml order)`);
        }
      }
      const block = BLOCK[type];
      if (dims[0] % block.values !== 0) {
        throw new FormatError(
          path,
          name,
          `rows of ${dims[0]} values do not fill whole ${typeName(type)} blocks of ${block.values}`,
        );
      }
      const count = product(dims);
      const bytes = (count / block.values) * block.bytes;
      const dataAt = offset + 12 + restLength;
      if (dataAt + bytes > file.size) {
        throw new FormatError(
          path,
          name,
          `${typeName(type)} data of dims [${dims}] needs ${bytes} bytes at ${dataAt}, the file ` +
            `has ${file.size - dataAt} left (truncated?)`,
        );
      }
      stored.push({ name, type, shape: dims.reverse(), count, offset: dataAt, bytes });
      offset = dataAt + bytes;
    }
    return offset;
  };
  let offset = 24;
  while (offset < file.size) {
    winAt = offset;
    win = await file.readAt(
      offset,
      Math.min(file.size - offset, HEADER_WINDOW),
      `tensor #${stored.length} at byte ${offset}`,
    );
    wv = new DataView(win.buffer, win.byteOffset, win.length);
    offset = parseWindow(offset);
  }
  // (Names appearing twice are refused once they are restored to their official names.)
  const names = new Set<string>();
  for (const s of stored) if (s.name.startsWith("blocks.0.att.")) names.add(s.name);
  const arch = names.has("blocks.0.att.x_rwkvag") || names.has("blocks.0.att.k_k")
    ? "7"
    : names.has("blocks.0.att.time_maa_x")
    ? "6"
    : names.has("blocks.0.att.ln_x.weight")
    ? (names.has("blocks.0.att.gate.weight") ? "5.2" : "5.1")
    : "4";
  return {
    stored,
    meta: {
      file_version: version,
      n_vocab: nVocab,
      n_embed: nEmbed,
      n_layer: nLayer,
      data_type: typeName(dataType),
      arch,
    },
  };
}

/** Decodes a name: short ASCII ones without a call into the runtime, others strictly. */
function utf8(decoder: TextDecoder, b: Uint8Array): string {
  if (b.length <= 64) {
    let s = "";
    for (let i = 0; i < b.length; i++) {
      if (b[i] >= 0x80) return decoder.decode(b);
      s += String.fromCharCode(b[i]);
    }
    return s;
  }
  return decoder.decode(b);
}

/** An exposed tensor, or the integers or scales of a matrix exposed as our q8/q4. */
type Plan = Exposed & { readonly kind?: "q8" | "q4" | "scale" };

/**
 * The exposed tensors with each plain Q8_0, Q5_0 or Q4_0 matrix (no value restored, not split
 * or transposed) as our q8 (Q5_0 as q − 16, exactly) or q4 integers plus `.qscale` (GGUF's
 * scheme): loaded as they are, never dequantized to f32 and quantized again.
 */
function asBlocks(exposed: Exposed[]): {
  exposed: Plan[];
  blockQuantized: Map<string, BlockQuantized>;
} {
  const out: Plan[] = [], blockQuantized = new Map<string, BlockQuantized>();
  for (const e of exposed) {
    const type = GGML_CODE[e.src.type], shape = e.info.shape;
    const blocks = !e.part && !e.transpose && !e.map && shape.length === 2 &&
      type !== undefined && (type === GGML.Q4_0 || mapsOntoQ8(type));
    if (!blocks) {
      out.push(e);
      continue;
    }
    const [rows, cols] = shape, name = e.info.name, count = rows * cols;
    const quant = type === GGML.Q4_0 ? "q4" : "q8";
    const scale: TensorInfo = {
      name: `${name}.qscale`,
      dtype: "F32",
      shape: [rows, cols / 32],
      byteLength: (count / 32) * 4,
    };
    const info: TensorInfo = quant === "q8"
      ? { name, dtype: "I8", shape: [rows, cols], byteLength: count }
      : { name, dtype: "U8", shape: [rows, cols / 2], byteLength: count / 2 };
    out.push({ ...e, info, kind: quant }, { ...e, info: scale, kind: "scale" });
    // Q8_0 blocks as they are, for a loader that lays them out itself (readBlocks)
    const q8_0 = type === GGML.Q8_0 ? { q8_0: { scaleMul: 1 } } : {};
    blockQuantized.set(name, { quant, rows, cols, scale, ...q8_0 });
  }
  return { exposed: out, blockQuantized };
}

/** Reads one exposed tensor: stored bytes → values → restored layout → bytes. */
async function readExposed(
  file: RandomAccessFile,
  e: Exposed,
  into?: Uint8Array,
): Promise<Uint8Array> {
  const { src, info } = e;
  const out = into ?? new Uint8Array(info.byteLength);
  const plain = !e.part && !e.transpose && !e.map;
  if (plain && src.type <= 1) {
    // FP32 → F32, FP16 → F16: the stored bytes are the tensor.
    return await file.readAt(src.offset, out, src.name);
  }
  const raw = await file.readAt(src.offset, src.bytes, src.name);
  let values: Float32Array | Uint16Array;
  if (src.type === 1) {
    const halves = new Uint16Array(raw.buffer, raw.byteOffset, src.count);
    values = info.dtype === "F16" ? halves : f16ToF32(halves);
  } else if (src.type === 0) values = new Float32Array(raw.buffer, raw.byteOffset, src.count);
  else values = dequantize(raw, src.type, src.count);
  if (e.part) {
    const len = src.count / e.part.parts;
    values = values.subarray(e.part.index * len, (e.part.index + 1) * len);
  }
  if (e.transpose) values = swapLastAxes(values, e.transpose);
  if (e.map) {
    const f = new Float32Array(values.length);
    for (let i = 0; i < f.length; i++) f[i] = e.map(values[i]);
    values = f;
  }
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return out;
}

/** Dequantizes ggml blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) of `count` values. */
export function dequantizeGgml(raw: Uint8Array, type: number, count: number): Float32Array {
  if (!Object.hasOwn(BLOCK, type) || type < 2) {
    throw new RangeError(`not a ggml quantized type: ${type}`);
  }
  const need = (count / 32) * BLOCK[type].bytes;
  if (count % 32 !== 0 || raw.length < need) {
    throw new RangeError(`${count} values of ${typeName(type)} need ${need} bytes`);
  }
  return dequantize(raw, type, count);
}

/** rwkv.cpp's type codes → ggml's (they differ from Q5_0 on). */
const GGML_CODE: Readonly<Record<number, number>> = {
  2: GGML.Q4_0,
  3: GGML.Q4_1,
  7: GGML.Q5_0,
  8: GGML.Q5_1,
  9: GGML.Q8_0,
};

function dequantize(raw: Uint8Array, type: number, count: number): Float32Array {
  return dequantizeGgmlType(raw, GGML_CODE[type], count);
}
