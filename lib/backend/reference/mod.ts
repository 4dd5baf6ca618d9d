/**
 * The reference backend: every operation in plain TypeScript (`math.ts`) on one thread, over
 * row-major weights. Slow, simple, and the oracle the other backends are tested against.
 * @module
 */

import type { Checkpoint } from "../../formats/checkpoint.ts";
import { runPasses } from "../../model/batch.ts";
import { type CreateModelOptions, createRunner, type Model } from "../../model/model.ts";
import { prepareModel } from "../../model/prepare.ts";
import { ReferenceOps } from "./ops.ts";

export { ReferenceOps } from "./ops.ts";

/**
 * Loads a model on the reference backend (plain TypeScript, one thread). The whole backend:
 * the shared loading ({@link prepareModel}), the version's forward pass bound to
 * {@link ReferenceOps}, and an engine that runs a batch's passes one after another.
 * @example
 * ```ts
 * import { openCheckpoint } from "../../formats/open.ts";
 * const model = await createReferenceModel(await openCheckpoint("model.pth"), { dtype: "f32" });
 * ```
 */
export async function createReferenceModel(
  ck: Checkpoint,
  options: CreateModelOptions = {},
): Promise<Model> {
  const { spec, weights, maxT, done } = await prepareModel(ck, options);
  const runner = createRunner(weights, new ReferenceOps(), maxT, ck.path);
  return done({
    name: "reference (TypeScript, 1 thread)",
    run: (items, every) =>
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
  });
}
