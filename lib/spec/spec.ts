/**
 * Which RWKV a checkpoint holds, and its sizes, told from tensor names and shapes the way the
 * official `rwkv` package tells them.
 * @module
 */

import { ModelError } from "../errors.ts";
import type { TensorInfo } from "../formats/checkpoint.ts";

/**
 * RWKV architecture versions, named as the official package names them.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * declare const model: Model;
 * if (model.info.version === "7") console.log("Goose");
 * ```
 */
export type RwkvVersion = "4" | "5.0" | "5.1" | "5.2" | "6" | "7";

/**
 * The shape of a model.
 * @example
 * ```ts
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * declare const checkpoint: Checkpoint;
 * const spec: ModelSpec = detectSpec(checkpoint.tensors);
 * console.log(spec.version, spec.heads, spec.headSize);
 * ```
 */
export interface ModelSpec {
  /** RWKV version as the official package names it ("4", "5.2", "7", …). */
  readonly version: RwkvVersion;
  /** Number of blocks. */
  readonly layers: number;
  /** Embedding (residual) width. */
  readonly embd: number;
  /** Width of the attention (time-mix) projections; equals `embd` in released models. */
  readonly attDim: number;
  /** Hidden width of the channel-mix (FFN). */
  readonly ffnDim: number;
  /** Vocabulary size (rows of `emb.weight`). */
  readonly vocab: number;
  /** Heads (1 for RWKV-4, whose recurrence is per channel). */
  readonly heads: number;
  /** Channels per head (`attDim / heads`). */
  readonly headSize: number;
}

function shapeOf(tensors: ReadonlyMap<string, TensorInfo>, name: string): readonly number[] {
  const t = tensors.get(name);
  if (!t) throw new ModelError(`missing tensor ${name}`);
  return t.shape;
}

/** Drops size-1 dimensions, as torch's `squeeze()`. */
export function squeezed(shape: readonly number[]): number[] {
  return shape.filter((d) => d !== 1);
}

/**
 * Detects version and sizes. Throws a ModelError listing what was found when the layout is
 * not one we know.
 * @example
 * ```ts
 * import { openCheckpoint } from "../formats/open.ts";
 * const ck = await openCheckpoint("model.pth");
 * const spec = detectSpec(ck.tensors); // { version: "7", layers: 12, embd: 768, ... }
 * ```
 */
export function detectSpec(tensors: ReadonlyMap<string, TensorInfo>, file = "model"): ModelSpec {
  const names = [...tensors.keys()];
  try {
    return detect(tensors, names);
  } catch (e) {
    if (!(e instanceof ModelError)) throw e;
    const sample = names.slice(0, 12).join(", ") + (names.length > 12 ? ", …" : "");
    throw new ModelError(
      `${file}: not an RWKV-4/5/6/7 checkpoint we know (${e.message}); it has ${names.length} ` +
        `tensors: ${sample || "none"}`,
    );
  }
}

/**
 * Largest layer index a name may carry: beyond any real model (the largest have under a hundred
 * layers), and short enough to parse exactly.
 */
const MAX_LAYER_INDEX = 99_999;

/** Tensors every block holds, whatever the version (large matrices of both mixes, its norms). */
const CORE = [
  "ln1.weight",
  "ln1.bias",
  "ln2.weight",
  "ln2.bias",
  "att.key.weight",
  "att.value.weight",
  "att.receptance.weight",
  "att.output.weight",
  "ffn.key.weight",
  "ffn.value.weight",
];

/** Tensors only block 0 may hold (the embedding's norm), or lack (RWKV-7's value residual). */
const FIRST_ONLY = new Set(["ln0.weight", "ln0.bias"]);
const NOT_IN_FIRST = new Set(["att.v0", "att.v1", "att.v2"]);

/**
 * The blocks' tensors by layer: each `blocks.N.` prefix must carry a plain index (digits, no
 * leading zero) of at most {@link MAX_LAYER_INDEX}, and the indices must run 0..L-1 without a gap.
 * A file naming `blocks.100000000.*` beside 12 real layers is refused here, before anything is
 * sized from its indices.
 */
function layersOf(names: readonly string[]): Map<string, number>[] {
  const byLayer = new Map<number, Map<string, number>>();
  for (const n of names) {
    if (!n.startsWith("blocks.")) continue;
    const m = /^blocks\.(0|[1-9][0-9]{0,4})\.(.+)$/.exec(n);
    if (!m || Number(m[1]) > MAX_LAYER_INDEX) {
      throw new ModelError(
        `tensor ${n}: a block's name is blocks.N.<name> with N a layer index from 0 to ` +
          MAX_LAYER_INDEX,
      );
    }
    const i = Number(m[1]);
    let layer = byLayer.get(i);
    if (!layer) byLayer.set(i, layer = new Map());
    // a quantized file's scales stand for their matrix here: lib/quant holds the two together
    layer.set(m[2].replace(/\.qscale$/, ""), 0);
  }
  const layers = byLayer.size;
  for (const i of byLayer.keys()) {
    if (i >= layers) {
      let gap = 0;
      while (byLayer.has(gap)) gap++;
      throw new ModelError(
        `layer indices must run from 0 without a gap: blocks.${i}.* is present but ` +
          `blocks.${gap}.* is not (${layers} layers found)`,
      );
    }
  }
  return Array.from({ length: layers }, (_, i) => byLayer.get(i)!);
}

/**
 * Checks that the tensor names and shapes agree with each other and with `spec`: every layer
 * complete (the same tensors as the last layer, block 0 aside for the embedding's norm and
 * RWKV-7's value residual, and the core matrices and norms in all), each tensor the shape of
 * its twin in the last layer, the large matrices, norms, embedding and head the sizes the
 * spec says, every size at least 1. Throws a ModelError naming the first tensor that does not.
 */
function checkAgreement(
  tensors: ReadonlyMap<string, TensorInfo>,
  layers: Map<string, number>[],
  spec: ModelSpec,
): void {
  const { embd, attDim, ffnDim, vocab } = spec;
  for (const [what, v] of Object.entries({ embd, attDim, ffnDim, vocab })) {
    if (!(Number.isSafeInteger(v) && v >= 1)) throw new ModelError(`${what} ${v} is not ≥ 1`);
  }
  const want = (name: string, dims: number[]) => {
    // a block-quantized matrix: lib/quant holds it to its scales, the model to its shape
    if (tensors.has(`${name}.qscale`)) return;
    const got = squeezed(shapeOf(tensors, name));
    if (got.length !== dims.length || got.some((d, k) => d !== dims[k])) {
      throw new ModelError(`tensor ${name} has shape [${got}], expected [${dims}]`);
    }
  };
  want("emb.weight", [vocab, embd]);
  want("head.weight", [vocab, embd]);
  want("ln_out.weight", [embd]);
  want("ln_out.bias", [embd]);
  const last = layers[layers.length - 1];
  for (let i = 0; i < layers.length; i++) {
    const b = `blocks.${i}.`;
    for (const n of CORE) if (!layers[i].has(n)) throw new ModelError(`missing tensor ${b}${n}`);
    for (const n of last.keys()) {
      if (!layers[i].has(n) && !(i === 0 && NOT_IN_FIRST.has(n))) {
        throw new ModelError(`missing tensor ${b}${n} (layer ${layers.length - 1} has it)`);
      }
    }
    for (const n of layers[i].keys()) {
      if (!last.has(n) && !(i === 0 && FIRST_ONLY.has(n))) {
        throw new ModelError(`tensor ${b}${n} has no twin in the other layers`);
      }
      if (last.has(n) && i !== layers.length - 1) {
        const a = tensors.get(b + n), z = tensors.get(`blocks.${layers.length - 1}.${n}`);
        if (!a || !z) continue; // scales without their matrix: lib/quant says so
        if (a.shape.length !== z.shape.length || a.shape.some((d, k) => d !== z.shape[k])) {
          throw new ModelError(
            `tensor ${b}${n} has shape [${a.shape}], its twin in the last layer [${z.shape}]`,
          );
        }
      }
    }
    for (const n of ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]) want(b + n, [embd]);
    for (const n of ["key", "value", "receptance"]) want(`${b}att.${n}.weight`, [attDim, embd]);
    want(`${b}att.output.weight`, [embd, attDim]);
    want(`${b}ffn.key.weight`, [ffnDim, embd]);
    want(`${b}ffn.value.weight`, [embd, ffnDim]);
  }
}

function detect(tensors: ReadonlyMap<string, TensorInfo>, names: string[]): ModelSpec {
  const layers = layersOf(names);
  const spec = detectSizes(tensors, names, layers.length);
  checkAgreement(tensors, layers, spec);
  return spec;
}

function detectSizes(
  tensors: ReadonlyMap<string, TensorInfo>,
  names: string[],
  layers: number,
): ModelSpec {
  const emb = shapeOf(tensors, "emb.weight");
  if (emb.length !== 2) throw new ModelError(`emb.weight has shape [${emb}], expected 2-D`);
  const [vocab] = emb;
  // A block-quantized embedding (rwkv-deno-quant) packs its rows: its scales give the width.
  const qscale = tensors.get("emb.weight.qscale");
  const embd = qscale?.shape.length === 2 ? qscale.shape[1] * 32 : emb[1];
  if (layers === 0) throw new ModelError("no blocks.N.* tensors");
  const ffnDim = shapeOf(tensors, "blocks.0.ffn.key.weight")[0];

  if (tensors.has("blocks.0.att.r_k")) {
    const rk = shapeOf(tensors, "blocks.0.att.r_k");
    const [heads, headSize] = rk.length === 2 ? rk : [1, rk[0]];
    return { version: "7", layers, embd, attDim: heads * headSize, ffnDim, vocab, heads, headSize };
  }

  const attDim = shapeOf(tensors, "blocks.0.att.key.weight")[0];
  let version: RwkvVersion = "4";
  let heads = 1;
  if (names.some((n) => n.includes("time_maa"))) {
    version = "6";
    const u = tensors.get("blocks.0.att.time_faaaa") ?? tensors.get("blocks.0.att.time_first");
    if (!u) throw new ModelError("RWKV-6 layout without blocks.0.att.time_faaaa");
    heads = u.shape[0];
  } else if (names.some((n) => n.includes("ln_x"))) {
    const decay = shapeOf(tensors, "blocks.0.att.time_decay");
    heads = decay[0];
    version = names.some((n) => n.includes("gate.weight")) ? "5.1" : "5.0";
    if (decay.length > 1 && decay[1] > 1) version = "5.2";
  }
  if (heads < 1 || attDim % heads !== 0) {
    throw new ModelError(`${heads} heads do not divide the attention width ${attDim}`);
  }
  return {
    version,
    layers,
    embd,
    attDim,
    ffnDim,
    vocab,
    heads,
    headSize: version === "4" ? 1 : attDim / heads,
  };
}
