/**
 * The reference backend: every operation in plain TypeScript (`math.ts`) on one thread, over
 * row-major weights. Slow, simple, and the oracle the other backends are tested against.
 * @module
 */

import type { Checkpoint } from "../../formats/checkpoint.ts";
import { runPasses } from "../../model/batch.ts";
import {
  type CreateModelOptions,
  createRunner,
  describeWeights,
  type Model,
  newModel,
} from "../../model/model.ts";
import type { Engine, EngineItem } from "../../model/ops.ts";
import type { State } from "../../model/state.ts";
import { loadWeights } from "../../model/weights.ts";
import { detectSpec } from "../../spec/spec.ts";
import { ReferenceOps } from "./ops.ts";

export { ReferenceOps } from "./ops.ts";

/**
 * Loads a model on the reference backend (plain TypeScript, one thread).
 * @example
 * ```ts ignore
 * const model = await createReferenceModel(await openCheckpoint("model.pth"), { dtype: "f32" });
 * ```
 */
export async function createReferenceModel(
  ck: Checkpoint,
  options: CreateModelOptions = {},
): Promise<Model> {
  const spec = detectSpec(ck.tensors, ck.path);
  const { weights } = await loadWeights(ck, spec, options);
  const runner = createRunner(weights, new ReferenceOps(), options.chunk ?? 64, ck.path);
  const engine: Engine<State> = {
    name: "reference (TypeScript, 1 thread)",
    run: (items: readonly EngineItem<State>[], every: boolean) =>
      Promise.resolve(
        runPasses(items, every, runner.maxT, spec.vocab, (tokens, pieces) => {
          const segs = pieces.map((p) => ({
            start: p.start,
            length: p.length,
            state: items[p.item].state.tensors,
          }));
          return runner.forward(tokens, segs, every);
        }),
      ),
    dispose: () => Promise.resolve(),
  };
  return newModel(engine, spec, describeWeights(spec, weights.layout, ck.path));
}
