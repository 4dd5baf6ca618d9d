/**
 * A team member: binds the model's forward pass to its {@link WorkerOps} over the shared memory
 * once, then runs every pass it is handed (the whole pass, not single products), meeting the
 * others at the barriers inside the split steps.
 * @module
 */

// The Worker global, typed here (JSR bans the `/// <reference lib="deno.worker" />` that would).
declare const self: {
  onmessage: ((e: MessageEvent<WorkerInit>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

import type { Segment } from "../../model/ops.ts";
import { createRunner } from "../../model/model.ts";
import { stateShapes } from "../../model/state.ts";
import { Weights, type WeightsLayout } from "../../model/weights.ts";
import { barrier } from "./_barrier.ts";
import { PROFILE } from "./_profile.ts";
import { CTRL } from "./_protocol.ts";
import { Region } from "./_region.ts";
import { WorkerOps } from "./_worker_ops.ts";
import { instantiateKernels, type Q8Paths } from "./kernels.ts";
import type { Placement } from "./plan.ts";

/** What the pool posts each Worker once. */
export interface WorkerInit {
  id: number;
  threads: number;
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  /**
   * The arena's memories of matrices (`Arena.memories` after the first), read through the
   * `split` build of the kernels, `splitModule`; none when the matrices share `memory`.
   */
  matrixMemories: WebAssembly.Memory[];
  splitModule?: WebAssembly.Module;
  layout: WeightsLayout;
  maxT: number;
  placement: Placement;
  ctrlOffset: number;
  tokensOffset: number;
  /** Per segment of a job: start row, length, byte offset of its state slot (Int32 × 3). */
  segmentsOffset: number;
  sharedOffset: number;
  sharedSize: number;
  privateOffset: number;
  privateSize: number;
  scratchBytes: number;
  /** Bytes of one product's input scratch for one token (see `WorkerOps`). */
  decodeScratchBytes: number;
  /** Where to add up milliseconds by kind (see `PROFILE`), when profiling. */
  profile?: Float64Array;
  /** Weight bytes of the largest row chunk claimed when decoding (see `CHUNK_BYTES`). */
  rowChunkBytes: number;
  /** Which q8 products take the fused dot, and how it reads (see `q8Paths`). */
  q8: Q8Paths;
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

function serve(init: WorkerInit): void {
  const { memory, id, threads, maxT } = init;
  const ctrl = new Int32Array(memory.buffer, init.ctrlOffset, CTRL.size);
  const tokens = new Int32Array(memory.buffer, init.tokensOffset, maxT);
  const table = new Int32Array(memory.buffer, init.segmentsOffset, maxT * 3);
  const priv = new Region(memory, init.privateOffset, init.privateSize);
  const kernels = [instantiateKernels(init.module, memory)];
  for (const m of init.matrixMemories) {
    kernels.push(instantiateKernels(init.splitModule!, memory, m));
  }
  for (const k of kernels) {
    if (init.q8.dot) k.q8_dot(init.q8.dot);
    k.q8_fused(init.q8.flags);
  }
  const ops = new WorkerOps(
    kernels,
    ctrl,
    id,
    threads,
    new Region(memory, init.sharedOffset, init.sharedSize),
    priv,
    init.placement.shared,
    init.scratchBytes,
    init.profile,
    init.rowChunkBytes,
    init.decodeScratchBytes,
  );
  const weights = new Weights(init.layout, [memory, ...init.matrixMemories].map((m) => m.buffer));
  const runner = createRunner(weights, ops, maxT, init.layout.spec.version);

  // A state slot holds a whole state in the official order. The tensors the recurrences update
  // split (by heads, or RWKV-4's by channels) are used in place by everyone; the others (token
  // shift's last rows) are updated alike by every member, so each needs its own: member 0 uses
  // the slot's, the others a private copy per segment.
  const sizes = stateShapes(init.layout.spec).map((s) => s.reduce((a, b) => a * b, 1));
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const sharedState = new Set(init.placement.sharedState);
  const own = sizes.map((_, i) => i).filter((i) => !sharedState.has(i));
  const ownLength = own.reduce((a, i) => a + sizes[i], 0);
  const slotViews = new Map<number, Float32Array[]>();
  const viewsOf = (off: number): Float32Array[] => {
    let v = slotViews.get(off);
    if (!v) {
      // the memory may have grown since the last job: take its current buffer
      const buf = memory.buffer;
      v = sizes.map((n, i) => new Float32Array(buf, off + starts[i] * 4, n));
      slotViews.set(off, v);
    }
    return v;
  };
  const copies = id === 0 ? [] : Array.from({ length: maxT }, () => {
    const region = priv.f32(ownLength, false), views: Float32Array[] = [];
    let o = 0;
    for (const i of own) {
      views[i] = region.subarray(o, o + sizes[i]);
      o += sizes[i];
    }
    return views;
  });

  self.postMessage({ ready: true });
  let job = 0;
  for (;;) {
    while (Atomics.load(ctrl, CTRL.job) === job) Atomics.wait(ctrl, CTRL.job, job);
    job = Atomics.load(ctrl, CTRL.job);
    if (Atomics.load(ctrl, CTRL.quit)) return;
    ops.startPass();
    const T = Atomics.load(ctrl, CTRL.tokens), every = Atomics.load(ctrl, CTRL.every) === 1;
    const segs: Segment<Float32Array>[] = [];
    for (let s = 0; s < Atomics.load(ctrl, CTRL.segments); s++) {
      const slot = viewsOf(table[s * 3 + 2] >>> 0);
      let state = slot;
      if (id !== 0) {
        state = slot.map((v, i) => sharedState.has(i) ? v : copies[s][i]);
        for (const i of own) copies[s][i].set(slot[i]);
      }
      segs.push({ start: table[s * 3], length: table[s * 3 + 1], state });
    }
    // member 0 must not change the shared state before everyone has copied it
    barrier(ctrl, threads);
    let logits: Float32Array;
    const t0 = performance.now();
    try {
      logits = runner.forward(tokens.subarray(0, T), segs, every);
      if (init.profile && id === 0 && !init.profile[PROFILE.paused]) {
        init.profile[PROFILE.pass] += performance.now() - t0;
        init.profile[PROFILE.passes]++;
      }
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
      Atomics.store(ctrl, CTRL.done, job);
      Atomics.notify(ctrl, CTRL.done);
    }
  }
}
