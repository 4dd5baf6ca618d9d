/**
 * Loads a checkpoint's tensors into one arena of CPU memory, tensor by tensor (peak memory: the arena
 * plus one tensor), applying the load-time transforms of the official package: the embedding
 * is layer-normed with `blocks.0.ln0` once, decays are pre-exponentiated, low-rank matrices are
 * transposed to (out, in), and the large matrices are stored in the requested dtype.
 * @module
 */

import { ModelError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import type { ModelSpec } from "../spec/spec.ts";
import type { WeightSource } from "./ops.ts";
import {
  Arena,
  type Matrix,
  type MatrixLayout,
  PLAIN_LAYOUT,
  type StorageDType,
  type TensorDesc,
  viewMatrix,
  type WeightDType,
} from "./tensor.ts";
import { fillTensor, readLn0, Scratch } from "./_weights_fill.ts";
import { planWeights } from "./_weights_plan.ts";
import { checkFits } from "./memory.ts";

export type { TensorDesc, WeightDType } from "./tensor.ts";
export { type Plan, planWeights, type WeightsPlan } from "./_weights_plan.ts";

/**
 * Serializable description of all loaded weights (with the memory, all it takes to view them).
 * @example
 * ```ts
 * declare const weights: Weights;
 * console.log(weights.layout.dtype, weights.layout.bytes); // "q8" 123456789
 * ```
 */
export interface WeightsLayout {
  /** The model's shape. */
  readonly spec: ModelSpec;
  /** Where each tensor lives, by its official name. */
  readonly tensors: Readonly<Record<string, TensorDesc>>;
  /** Storage dtype of the large matrices. */
  readonly dtype: StorageDType;
  /** Bytes the weights take in the arena. */
  readonly bytes: number;
}

/**
 * Loaded weights: typed views by name over the arena.
 * @example
 * ```ts
 * import { openCheckpoint } from "../formats/open.ts";
 * import { detectSpec } from "../spec/spec.ts";
 * const ck = await openCheckpoint("model.pth");
 * const { weights } = await loadWeights(ck, detectSpec(ck.tensors), { dtype: "q8" });
 * const ln1 = weights.vec("blocks.0.ln1.weight");
 * ```
 */
export class Weights implements WeightSource<Float32Array, Matrix> {
  /** Where each tensor is (with the buffers, all it takes to view them). */
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
 * ```ts
 * import type { MatrixShape } from "./ops.ts";
 * declare const m: MatrixShape, C: number;
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

/**
 * Options of {@link loadWeights}.
 * @example
 * ```ts
 * import { KERNEL_LAYOUT } from "../backend/wasm/layout.ts";
 * const options: LoadWeightsOptions = { dtype: "q4", layout: KERNEL_LAYOUT, extraBytes: 2 ** 20 };
 * ```
 */
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
  /** Asks Linux for huge pages for the weights' memories (default false; see `Arena`). */
  hugePages?: boolean;
  /** Called after each tensor. */
  onProgress?: (done: number, total: number, name: string) => void;
  /**
   * Bytes the load may take (default: what the system has available, see `availableMemory`):
   * a model that needs more is refused with an `OutOfMemoryError` before the arena exists.
   */
  availableMemory?: number;
  /** The backend's name, for that error's message. */
  backend?: string;
}

/** Plans, allocates and fills the arena from a checkpoint. */
export async function loadWeights(
  ck: Checkpoint,
  spec: ModelSpec,
  options: LoadWeightsOptions = {},
): Promise<{ weights: Weights; arena: Arena }> {
  const { plans, bytes, mainDtype } = planWeights(
    ck,
    spec,
    options.dtype ?? "auto",
    options.layout,
  );
  checkFits(ck, spec, bytes + (options.extraBytes ?? 0), {
    dtype: options.dtype ?? "auto",
    layout: options.layout,
    availableBytes: options.availableMemory,
    // matrices in the first memory: weights and buffers within one 32-bit memory's 4 GiB
    singleMemory: options.matrixMemoryBytes === 0,
    backend: options.backend,
  });
  const matrixLayout = options.layout ?? PLAIN_LAYOUT;
  const arena = new Arena(bytes + (options.extraBytes ?? 0), undefined, matrixLayout, {
    matrixMemoryBytes: options.matrixMemoryBytes,
    hugePages: options.hugePages,
  });
  const tensors: Record<string, TensorDesc> = {};
  const ln0 = await readLn0(ck);
  let done = 0;
  const scratch = new Scratch();
  // Each matrix is arranged for its backend once its rows are in, so the progress reported
  // covers that work too; and while the next tensor's first read is in flight (the reads run
  // off this thread), so the two overlap.
  let arrange: (() => void) | undefined;
  for (const p of plans) {
    const filling = fillTensor(ck, arena, spec, p, ln0, scratch, tensors);
    filling.catch(() => {}); // awaited below, after the arrangement
    arrange?.();
    const own = await filling; // an arrangement of its own (ggml blocks), or the layout's
    arrange = () => {
      if (own) own();
      else {
        const made = p.kind === "lowrank3"
          ? Object.keys(tensors).filter((k) => k.startsWith(`${p.name}.`))
          : [p.name];
        for (const k of made) {
          const t = tensors[k];
          if (t?.kind !== "mat") continue;
          arena.layout.finish(arena.bufferOf(t.desc), t.desc, arena.memories[t.desc.memory ?? 0]);
        }
      }
      done++;
      options.onProgress?.(done, plans.length, p.name);
    };
  }
  arrange?.();
  const layout: WeightsLayout = { spec, tensors, dtype: mainDtype, bytes: arena.usedTotal };
  return { weights: new Weights(layout, arena.buffers), arena };
}
