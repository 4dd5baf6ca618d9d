/**
 * How rwkv.cpp's stored tensors become the official ones: names, shapes (trailing ones
 * stripped, RWKV-7's stacked token-shift mixes split, transposed low-rank factors) and values
 * (decays and biases undone).
 * @module
 */

import { FormatError } from "../errors.ts";
import type { DType, TensorInfo } from "./checkpoint.ts";

/** One tensor as stored in the file. */
export interface Stored {
  readonly name: string;
  /** rwkv.cpp data type code. */
  readonly type: number;
  /** PyTorch order (the file's dims reversed). */
  readonly shape: readonly number[];
  readonly count: number;
  readonly offset: number;
  readonly bytes: number;
}

/** How one exposed tensor is made from a stored one. */
export interface Exposed {
  readonly info: TensorInfo;
  readonly src: Stored;
  /** Take part `index` of `parts` equal consecutive parts of the stored values. */
  readonly part?: { readonly index: number; readonly parts: number };
  /** Swap the last two axes of the stored (batch, rows, cols) values. */
  readonly transpose?: { readonly batch: number; readonly rows: number; readonly cols: number };
  /** Restore each value (always produces F32). */
  readonly map?: (x: number) => number;
}

/** Header fields of an rwkv.cpp file, as given in `Checkpoint.metadata`. */
export interface RwkvCppMetadata {
  /** 100 or 101. */
  readonly file_version: number;
  readonly n_vocab: number;
  readonly n_embed: number;
  readonly n_layer: number;
  /** Main data type as rwkv.cpp names it ("FP16", "Q5_1", …). */
  readonly data_type: string;
  /** Architecture as rwkv.cpp detects it: "4", "5.1", "5.2", "6" or "7". */
  readonly arch: string;
  /** How each (official) tensor is stored in the file: "FP32", "FP16", "Q5_1", … */
  readonly tensor_types: Readonly<Record<string, string>>;
}

/** Values of a tensor of `shape`. */
export function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Strips trailing size-1 dims (keeping at least one). */
function stripTrailingOnes(shape: readonly number[]): number[] {
  const s = shape.slice();
  while (s.length > 1 && s[s.length - 1] === 1) s.pop();
  return s;
}

const X_RWKVAG = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"];

/** Plans, for every stored tensor, the official tensor(s) it becomes. */
export function restore(
  path: string,
  stored: readonly Stored[],
  meta: Omit<RwkvCppMetadata, "tensor_types">,
): Exposed[] {
  const out: Exposed[] = [];
  const arch = meta.arch;
  const make = (
    src: Stored,
    name: string,
    shape: readonly number[],
    extra: Omit<Exposed, "info" | "src"> = {},
  ): Exposed => {
    const dtype: DType = src.type === 1 && !extra.map ? "F16" : "F32";
    const count = product(shape);
    const size = dtype === "F16" ? 2 : 4;
    return { info: { name, dtype, shape, byteLength: count * size }, src, ...extra };
  };
  const transposed = (src: Stored, name: string): Exposed => {
    const s = src.shape;
    if (s.length < 2) throw new FormatError(path, name, `expected a matrix, dims are [${s}]`);
    const batch = s.length === 3 ? s[0] : 1;
    const rows = s[s.length - 2], cols = s[s.length - 1];
    const shape = s.length === 3 ? [batch, cols, rows] : [cols, rows];
    return make(src, name, shape, { transpose: { batch, rows, cols } });
  };

  for (const src of stored) {
    const { name } = src;
    const n = src.count;
    if (arch === "7") {
      const m = /^(blocks\.\d+\.att\.)x_rwkvag$/.exec(name);
      if (m) {
        if (src.shape.length < 1 || src.shape[0] !== 6 || n % 6 !== 0) {
          throw new FormatError(path, name, `shape [${src.shape}], expected (6, 1, C)`);
        }
        X_RWKVAG.forEach((x, index) =>
          out.push(make(src, m[1] + x, [1, 1, n / 6], { part: { index, parts: 6 } }))
        );
        continue;
      }
      if (/\.att\.[wavg][12]$/.test(name)) {
        out.push(transposed(src, name));
        continue;
      }
      out.push(make(src, name, src.shape));
      continue;
    }
    if (!name.includes(".time_")) {
      out.push(make(src, name, src.shape));
      continue;
    }
    // Every `.time_*` tensor was squeezed by the converter.
    if (/\.time_(mix|maa)_[a-z]+$/.test(name)) {
      out.push(make(src, name, [1, 1, n]));
    } else if (arch === "6" && /\.time_(maa_w1|decay_w1|decay_w2|maa_w2)$/.test(name)) {
      out.push(transposed(src, name));
    } else if (name.endsWith(".time_decay")) {
      if (arch === "4") out.push(make(src, name, [n], { map: (x) => Math.log(-x) }));
      else if (arch === "6") out.push(make(src, name, [1, 1, n]));
      else {
        out.push(
          make(src, name, stripTrailingOnes(src.shape), { map: (x) => Math.log(-Math.log(x)) }),
        );
      }
    } else if (name.endsWith(".time_first")) {
      if (arch === "4") out.push(make(src, name, [n]));
      else out.push(make(src, name, stripTrailingOnes(src.shape), { map: Math.log }));
    } else if (name.endsWith(".time_faaaa")) {
      const s = stripTrailingOnes(src.shape);
      out.push(make(src, name, s.length === 1 ? [1, s[0]] : s));
    } else {
      out.push(make(src, name, src.shape));
    }
  }
  return out;
}
