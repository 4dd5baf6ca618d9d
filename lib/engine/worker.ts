/**
 * A team member: builds the model's runner over the shared memory once, then runs every
 * forward pass it is handed (the whole pass, not single products), meeting the others at the
 * barriers inside `matmul`.
 * @module
 */

/// <reference lib="deno.worker" />

import { createRunner } from "../model/model.ts";
import { stateShapes } from "../model/state.ts";
import { Weights, type WeightsLayout } from "../model/weights.ts";
import { barrier, CTRL, Region, WorkerCompute } from "./compute.ts";
import { instantiateKernels } from "./kernels.ts";

/** What the pool posts each Worker once. */
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
  try {
    serve(e.data);
  } catch (err) {
    self.postMessage({ error: String((err as Error)?.stack ?? err) });
  }
  // Leave nothing behind that could keep the process alive.
  self.close();
};

/** Views of `n`-value state tensors, in the official order, over `data`. */
function stateViews(layout: WeightsLayout, data: Float32Array): Float32Array[] {
  const out: Float32Array[] = [];
  let off = 0;
  for (const s of stateShapes(layout.spec)) {
    const n = s.reduce((a, b) => a * b, 1);
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

function serve(init: WorkerInit): void {
  const { memory, id, threads } = init;
  const buffer = memory.buffer;
  const ctrl = new Int32Array(buffer, init.ctrlOffset, CTRL.size);
  const tokens = new Int32Array(buffer, init.tokensOffset, init.maxT);
  const priv = new Region(memory, init.privateOffset, init.privateSize);
  const compute = new WorkerCompute(
    instantiateKernels(init.module, memory),
    ctrl,
    id,
    threads,
    new Region(memory, init.sharedOffset, init.sharedSize),
    priv,
    init.maxActivations,
  );
  const runner = createRunner(new Weights(init.layout, buffer), compute, init.maxT);
  // The math updates the state alike in every member, so each needs its own: member 0 works
  // on the shared copy in place (the main thread reads it back), the others on a private one.
  const sharedState = new Float32Array(buffer, init.stateOffset, init.stateLength);
  const myState = id === 0 ? sharedState : priv.f32(init.stateLength);
  const tensors = stateViews(init.layout, myState);
  self.postMessage({ ready: true });
  let job = 0;
  for (;;) {
    while (Atomics.load(ctrl, CTRL.job) === job) Atomics.wait(ctrl, CTRL.job, job);
    job = Atomics.load(ctrl, CTRL.job);
    if (Atomics.load(ctrl, CTRL.quit)) return;
    const T = Atomics.load(ctrl, CTRL.tokens), every = Atomics.load(ctrl, CTRL.every) === 1;
    if (id !== 0) myState.set(sharedState);
    // member 0 must not change the shared state before everyone has copied it
    barrier(ctrl, threads);
    let logits: Float32Array;
    try {
      logits = runner.forward(tokens.subarray(0, T), tensors, every);
    } catch (err) {
      // The others may now wait at a barrier forever: the pool terminates the team.
      Atomics.store(ctrl, CTRL.error, 1);
      self.postMessage({ error: String((err as Error)?.stack ?? err) });
      Atomics.store(ctrl, CTRL.done, job);
      Atomics.notify(ctrl, CTRL.done);
      return;
    }
    if (id === 0) {
      // The last product ended in a barrier, so the logits are complete.
      Atomics.store(ctrl, CTRL.logitsOffset, logits.byteOffset);
      Atomics.store(ctrl, CTRL.logitsLength, logits.length);
      Atomics.store(ctrl, CTRL.done, job);
      Atomics.notify(ctrl, CTRL.done);
    }
  }
}
