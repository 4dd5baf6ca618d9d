/**
 * A model on the WebGPU backend: the versions' forward passes (`lib/model/v4.ts` … `v7.ts`)
 * recorded as dispatches by {@link GpuCompute}, one submission per forward call.
 * @module
 */

import { ModelError } from "../../errors.ts";
import type { Checkpoint } from "../../formats/checkpoint.ts";
import { type CreateModelOptions, createRunner, infoOf, Model } from "../../model/model.ts";
import type { Runner } from "../../model/runner.ts";
import { detectSpec } from "../../model/spec.ts";
import { State, stateShapes } from "../../model/state.ts";
import { loadWeights } from "../../model/weights.ts";
import { GpuCompute, toRowMajor } from "./compute.ts";
import { type AdapterChoice, openGpu } from "./device.ts";

/** Options of {@link createWebGpuModel}. */
export interface WebGpuModelOptions extends CreateModelOptions {
  /** Which adapters to accept (default `any`: a software adapter too). */
  adapter?: AdapterChoice;
}

/**
 * Loads a checkpoint onto the WebGPU device. Weights are uploaded once (matrices in the
 * quantized file's layout, split by rows where one exceeds a storage binding); each forward call
 * writes the state into the device's state slot, records every step of the pass, submits them
 * in one command buffer and reads back the logits and the state.
 * @example
 * ```ts ignore
 * const ck = await openCheckpoint("model.safetensors");
 * const model = await createWebGpuModel(ck, { dtype: "q8" });
 * ck.close();
 * const logits = await model.forward([510], model.createState());
 * await model.dispose();
 * ```
 */
export async function createWebGpuModel(
  ck: Checkpoint,
  options: WebGpuModelOptions = {},
): Promise<Model> {
  const spec = detectSpec(ck.tensors, ck.path);
  const gpu = await openGpu({ adapter: options.adapter });
  let c: GpuCompute | undefined;
  try {
    const { weights } = await loadWeights(ck, spec, options);
    c = new GpuCompute(gpu);
    for (const [name, d] of Object.entries(weights.layout.tensors)) {
      if (d.kind === "vec") c.addVector(weights.vec(name));
      else {
        const m = weights.mat(name);
        c.addMatrix(m, toRowMajor(m));
      }
    }
    let runner: Runner;
    try {
      runner = createRunner(weights, c, options.chunk ?? 64);
    } catch (e) {
      if (e instanceof ModelError) throw new ModelError(`${ck.path}: ${e.message}`);
      throw e;
    }
    const sizes = stateShapes(spec).map((s) => s.reduce((a, b) => a * b, 1));
    const slot = c.buffer(sizes.reduce((a, b) => a + b, 0));
    const views: Float32Array[] = [];
    let at = 0;
    for (const n of sizes) views.push(slot.subarray(at, at += n));
    c.seal();
    const compute = c;
    const V = spec.vocab;
    const run = async (tokens: Int32Array, state: State, every: boolean) => {
      const T = tokens.length;
      const out = new Float32Array(every ? T * V : V);
      for (let t0 = 0; t0 < T; t0 += runner.maxT) {
        const part = tokens.subarray(t0, Math.min(T, t0 + runner.maxT));
        compute.write(slot, state.data);
        const logits = runner.forward(part, views, every);
        const [values, after] = await compute.submit([logits, slot]);
        state.data.set(after);
        if (every) out.set(values, t0 * V);
        else if (t0 + part.length === T) out.set(values.subarray(values.length - V));
      }
      return out;
    };
    const info = infoOf(spec, weights, ck.path, `webgpu (${gpu.adapterName})`);
    return new Model(info, spec, run, () => {
      compute.destroy();
      return Promise.resolve();
    });
  } catch (e) {
    if (c) c.destroy();
    else gpu.destroy();
    throw e;
  }
}
