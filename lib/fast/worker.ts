/**
 * A team member: builds the model's runner over the shared memory, then runs every forward
 * pass it is handed (the whole pass, not single products), meeting the others at barriers.
 * @module
 */

/// <reference lib="deno.worker" />

import { createRunner } from "../model/model.ts";
import { stateShapes } from "../model/state.ts";
import { Weights, type WeightsLayout } from "../model/weights.ts";
import { barrier, CTRL, Region, WorkerCompute } from "./compute.ts";
import { instantiateKernels } from "./kernels.ts";

/** What the pool sends a Worker once. */
export interface WorkerInit {
  id: number;
  threads: number;
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  layout: WeightsLayout;
  maxT: number;
  ctrlOffset: number;
  tokensOffset: number;
  stateOffset: number;
  stateLength: number;
  sharedOffset: number;
  sharedSize: number;
  privateOffset: number;
  privateSize: number;
  maxActivations: number;
}

self.onmessage = (e: MessageEvent<WorkerInit>) => {
  const init = e.data;
  try {
    run(init);
  } catch (err) {
    self.postMessage({ error: String((err as Error)?.stack ?? err) });
  }
  self.close();
};

function run(init: WorkerInit): void {
  const { memory } = init;
  const buffer = memory.buffer;
  const ctrl = new Int32Array(buffer, init.ctrlOffset, CTRL.size);
  const tokens = new Int32Array(buffer, init.tokensOffset, init.maxT);
  const sharedState = new Float32Array(buffer, init.stateOffset, init.stateLength);
  const kernels = instantiateKernels(init.module, memory);
  const priv = new Region(memory, init.privateOffset, init.privateSize);
  const compute = new WorkerCompute(
    kernels,
    ctrl,
    init.id,
    init.threads,
    new Region(memory, init.sharedOffset, init.sharedSize),
    priv,
    init.maxActivations,
  );
  const weights = new Weights(init.layout, buffer);
  const runner = createRunner(weights, compute, init.maxT);
  // A private copy of the state: every member updates it alike.
  const myState = priv.f32(init.stateLength);
  const tensors: Float32Array[] = [];
  let off = 0;
  for (const s of stateShapes(init.layout.spec)) {
    const n = s.reduce((a, b) => a * b, 1);
    tensors.push(myState.subarray(off, off + n));
    off += n;
  }
  self.postMessage({ ready: true });
  let job = 0;
  for (;;) {
    while (Atomics.load(ctrl, CTRL.job) === job) Atomics.wait(ctrl, CTRL.job, job);
    job = Atomics.load(ctrl, CTRL.job);
    if (Atomics.load(ctrl, CTRL.quit)) return;
    const T = Atomics.load(ctrl, CTRL.tokens), every = Atomics.load(ctrl, CTRL.every) === 1;
    myState.set(sharedState);
    let logits: Float32Array;
    try {
      logits = runner.forward(tokens.subarray(0, T), tensors, every);
    } catch (err) {
      Atomics.store(ctrl, CTRL.error, 1);
      self.postMessage({ error: String((err as Error)?.stack ?? err) });
      Atomics.store(ctrl, CTRL.done, job);
      Atomics.notify(ctrl, CTRL.done);
      return;
    }
    // everyone has read the shared state before member 0 writes the new one
    barrier(ctrl, init.threads);
    if (init.id === 0) {
      sharedState.set(myState);
      Atomics.store(ctrl, CTRL.logitsOffset, logits.byteOffset);
      Atomics.store(ctrl, CTRL.logitsLength, logits.length);
      Atomics.store(ctrl, CTRL.done, job);
      Atomics.notify(ctrl, CTRL.done);
    }
  }
}
