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
 * ```ts ignore
 * if (model.info.version === "7") console.log("Goose");
 * ```
 */
export type RwkvVersion = "4" | "5.0" | "5.1" | "5.2" | "6" | "7";

/**
 * The shape of a model.
 * @example
 * ```ts ignore
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
 * ```ts ignore
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

function detect(tensors: ReadonlyMap<string, TensorInfo>, names: string[]): ModelSpec {
  const emb = shapeOf(tensors, "emb.weight");
  if (emb.length !== 2) throw new ModelError(`emb.weight has shape [${emb}], expected 2-D`);
  const [vocab] = emb;
  // A block-quantized embedding (rwkv-deno-quant) packs its rows: its scales give the width.
  const qscale = tensors.get("emb.weight.qscale");
  const embd = qscale?.shape.length === 2 ? qscale.shape[1] * 32 : emb[1];
  let layers = 0;
  for (const n of names) {
    const m = /^blocks\.(\d+)\./.exec(n);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
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
