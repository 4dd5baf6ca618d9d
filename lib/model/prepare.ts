/**
 * What every backend's loader does around its own part: check the options every backend takes,
 * detect the model's shape, load the weights (arranged as the backend asks), and, once the
 * backend has made its {@link Engine}, wrap it in a {@link Model}. A backend is then
 * "prepare → bind the forward pass to its ops (`createRunner`) → its engine → `done(engine)`".
 * @module
 */

import { UsageError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { detectSpec, type ModelSpec } from "../spec/spec.ts";
import { type CreateModelOptions, describeWeights, type Model, newModel } from "./model.ts";
import type { Engine } from "./ops.ts";
import type { State } from "./state.ts";
import type { Arena } from "./tensor.ts";
import { loadWeights, type LoadWeightsOptions, type Weights } from "./weights.ts";

/**
 * A checkpoint loaded for a backend: its shape, its weights in CPU memory, the tokens a pass
 * takes, and `done`, which makes the model of the backend's engine.
 * @example
 * ```ts
 * import { ReferenceOps } from "../backend/reference/ops.ts";
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * import type { ModelSpec } from "../spec/spec.ts";
 * import { createRunner, type Model } from "./model.ts";
 * import type { Engine, Runner } from "./ops.ts";
 * import type { State } from "./state.ts";
 * declare const ck: Checkpoint;
 * declare function myEngine(runner: Runner<Float32Array>, spec: ModelSpec): Engine<State>;
 * async function create(): Promise<Model> {
 *   const { spec, weights, maxT, done } = await prepareModel(ck, { dtype: "f32" });
 *   const runner = createRunner(weights, new ReferenceOps(), maxT, ck.path);
 *   return done(myEngine(runner, spec));
 * }
 * ```
 */
export interface PreparedModel {
  /** The model's shape. */
  readonly spec: ModelSpec;
  /** The weights, as `loadWeights` arranged them. */
  readonly weights: Weights;
  /** The memory they are in (a backend may reserve room after them). */
  readonly arena: Arena;
  /** Largest number of tokens of one pass (`options.chunk`, default 64). */
  readonly maxT: number;
  /** The {@link Model} over the backend's engine. */
  done(engine: Engine<State>): Model;
}

/**
 * Checks `options.chunk`, detects the model's shape and loads its weights (`load`: how the
 * backend wants them laid out); a UsageError names a bad option, a ModelError the checkpoint's
 * problem.
 * @example
 * ```ts
 * import { KERNEL_LAYOUT } from "../backend/wasm/layout.ts";
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * declare const ck: Checkpoint;
 * const prepared = await prepareModel(ck, { dtype: "q8" }, { layout: KERNEL_LAYOUT });
 * ```
 */
export async function prepareModel(
  ck: Checkpoint,
  options: CreateModelOptions,
  load: Pick<LoadWeightsOptions, "layout" | "matrixMemoryBytes"> = {},
): Promise<PreparedModel> {
  const maxT = options.chunk ?? 64;
  if (!Number.isInteger(maxT) || maxT < 1 || maxT > 4096) {
    throw new UsageError(`chunk must be a whole number from 1 to 4096, not ${maxT}`);
  }
  const spec = detectSpec(ck.tensors, ck.path);
  const { weights, arena } = await loadWeights(ck, spec, {
    dtype: options.dtype,
    onProgress: options.onProgress,
    matrixMemoryBytes: options.matrixMemoryBytes,
    hugePages: options.hugePages,
    availableMemory: options.availableMemory,
    ...load,
  });
  return {
    spec,
    weights,
    arena,
    maxT,
    done: (engine) => newModel(engine, spec, describeWeights(spec, weights.layout, ck.path)),
  };
}
