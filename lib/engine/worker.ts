/**
 * A team member: builds the model's runner over the shared memory once, then runs every
 * forward pass it is handed (the whole pass, not single products), meeting the others at the
 * barriers inside `matmul`.
 * @module
 */

// The Worker global, typed here (JSR bans the `/// <reference lib="deno.worker" />` that would).
declare const self: {
  onmessage: ((e: MessageEvent<WorkerInit>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

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
  scratchBytes: number;
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

/**
 * Views of the state tensors, in the official order: the recurrences' (H, N, N) tensors over
 * `shared` (the team updates them in place, each member its heads), the rest over `mine`
 * (each member updates its own copy alike). Also the [start, end) ranges of `mine`'s views,
 * the parts a member copies from the shared state before each job.
 */
function stateViews(
  layout: WeightsLayout,
  shared: Float32Array,
  mine: Float32Array,
): { views: Float32Array[]; own: [number, number][] } {
  const views: Float32Array[] = [], own: [number, number][] = [];
  let off = 0;
  for (const s of stateShapes(layout.spec)) {
    const n = s.reduce((a, b) => a * b, 1);
    if (s.length === 3) views.push(shared.subarray(off, off + n));
    else {
      views.push(mine.subarray(off, off + n));
      own.push([off, off + n]);
    }
    off += n;
  }
  return { views, own };
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
    init.scratchBytes,
  );
  const runner = createRunner(new Weights(init.layout, buffer), compute, init.maxT);
  // The math updates the small state tensors alike in every member, so each needs its own:
  // member 0 works on the shared copy in place (the main thread reads it back), the others on
  // a private one. The recurrences' big tensors are split by heads and stay shared.
  const sharedState = new Float32Array(buffer, init.stateOffset, init.stateLength);
  const myState = id === 0 ? sharedState : priv.f32(init.stateLength);
  const { views: tensors, own } = stateViews(init.layout, sharedState, myState);
  self.postMessage({ ready: true });
  let job = 0;
  for (;;) {
    while (Atomics.load(ctrl, CTRL.job) === job) Atomics.wait(ctrl, CTRL.job, job);
    job = Atomics.load(ctrl, CTRL.job);
    if (Atomics.load(ctrl, CTRL.quit)) return;
    const T = Atomics.load(ctrl, CTRL.tokens), every = Atomics.load(ctrl, CTRL.every) === 1;
    if (id !== 0) { for (const [a, b] of own) myState.set(sharedState.subarray(a, b), a); }
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
