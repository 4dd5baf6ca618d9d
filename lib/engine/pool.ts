/**
 * The fast engine: a team of Deno Workers started once per model over one shared WebAssembly
 * memory that holds the weights (loaded once) and every buffer. Each forward pass is one job:
 * the main thread writes the tokens and the state into shared memory, bumps a job counter, and
 * awaits completion with `Atomics.waitAsync`, so its event loop stays free; the Workers run the
 * whole pass SPMD and meet at a barrier after each product.
 * @module
 */

import { ModelError, RwkvError, UsageError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { type CreateModelOptions, createRunner, infoOf, Model } from "../model/model.ts";
import { detectSpec } from "../model/spec.ts";
import { State, stateShapes } from "../model/state.ts";
import { loadWeights } from "../model/weights.ts";
import { CountingCompute, CTRL, productScratchBytes } from "./compute.ts";
import { compileKernels } from "./kernels.ts";
import type { WorkerInit } from "./worker.ts";

/** States a forward call of some fast model is updating now (any model of this process). */
const running = new WeakSet<State>();

/** Options of {@link createFastModel}. */
export interface FastModelOptions extends CreateModelOptions {
  /** Worker threads (default: the machine's cores, at most 8). */
  threads?: number;
}

/** Default team size: one Worker per core, at most 8. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
}

/**
 * Loads a checkpoint into shared memory and starts the Worker team; returns a {@link Model}
 * whose `forward` runs on it. `dispose()` ends the Workers.
 * @example
 * ```ts ignore
 * const model = await createFastModel(await openCheckpoint("model.pth"), { threads: 2, dtype: "q8" });
 * const logits = await model.forward([510, 3158], model.createState());
 * await model.dispose();
 * ```
 */
export async function createFastModel(
  ck: Checkpoint,
  options: FastModelOptions = {},
): Promise<Model> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RwkvError(`threads must be a whole number from 1 to 64, not ${threads}`);
  }
  const maxT = options.chunk ?? 64;
  if (!Number.isInteger(maxT) || maxT < 1 || maxT > 4096) {
    throw new RwkvError(`chunk must be a whole number from 1 to 4096, not ${maxT}`);
  }
  const spec = detectSpec(ck.tensors, ck.path);
  const module = await compileKernels();
  const { weights, arena } = await loadWeights(ck, spec, options);

  // Size the engine's buffers by binding the math once to a counting machine (the runner
  // needs the loaded weights, so the arena grows afterwards, once).
  const count = new CountingCompute();
  try {
    createRunner(weights, count, maxT);
  } catch (e) {
    if (e instanceof ModelError) throw new ModelError(`${ck.path}: ${e.message}`);
    throw e;
  }
  // the widest product input: the quantized-activation buffer of each member holds maxT of them
  let maxCols = 0;
  for (const t of Object.values(weights.layout.tensors)) {
    if (t.kind === "mat") maxCols = Math.max(maxCols, t.desc.cols);
  }
  const scratchBytes = productScratchBytes(maxT, maxCols);
  const stateLength = stateShapes(spec).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const privateSize = count.private + stateLength * 4 + scratchBytes + 8192;
  const sharedSize = count.shared + 4096;
  const total = CTRL.size * 4 + maxT * 4 + stateLength * 4 + sharedSize +
    threads * privateSize + 64 * (threads + 8);
  arena.reserve(total);
  const ctrlOffset = arena.alloc(CTRL.size * 4);
  const tokensOffset = arena.alloc(maxT * 4);
  const stateOffset = arena.alloc(stateLength * 4);
  const sharedOffset = arena.alloc(sharedSize);
  const privateOffsets = Array.from({ length: threads }, () => arena.alloc(privateSize));
  const memory = arena.memory;
  const buffer = memory.buffer;
  const ctrl = new Int32Array(buffer, ctrlOffset, CTRL.size);
  const sharedState = new Float32Array(buffer, stateOffset, stateLength);
  const tokensView = new Int32Array(buffer, tokensOffset, maxT);

  const workers: Worker[] = [];
  let failure: string | undefined;
  const fail = (id: number, msg: string) => {
    failure ??= `worker ${id}: ${msg}`;
    // wake the main thread if it waits for a job that will not finish
    Atomics.store(ctrl, CTRL.error, 1);
    Atomics.add(ctrl, CTRL.done, 0x40000000);
    Atomics.notify(ctrl, CTRL.done);
  };
  const ready = Array.from({ length: threads }, (_, id) =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      workers.push(w);
      w.onmessage = (e) => {
        if (e.data?.ready) resolve();
        else if (e.data?.error) {
          fail(id, e.data.error);
          reject(new RwkvError(`engine worker ${id} failed: ${e.data.error}`));
        }
      };
      w.onerror = (e) => {
        e.preventDefault();
        fail(id, e.message);
        reject(new RwkvError(`engine worker ${id} failed: ${e.message}`));
      };
      const init: WorkerInit = {
        id,
        threads,
        memory,
        module,
        layout: weights.layout,
        maxT,
        ctrlOffset,
        tokensOffset,
        stateOffset,
        stateLength,
        sharedOffset,
        sharedSize,
        privateOffset: privateOffsets[id],
        privateSize,
        scratchBytes,
      };
      w.postMessage(init);
    }));
  try {
    await Promise.all(ready);
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }

  let queue: Promise<unknown> = Promise.resolve();
  let terminated = false;
  const terminate = () => {
    if (terminated) return;
    terminated = true;
    Atomics.store(ctrl, CTRL.quit, 1);
    Atomics.add(ctrl, CTRL.job, 1);
    Atomics.notify(ctrl, CTRL.job);
    for (const w of workers) w.terminate();
  };

  /** One job: up to maxT tokens; resolves with a view of the logits in shared memory. */
  async function runChunk(tokens: Int32Array, every: boolean): Promise<Float32Array> {
    tokensView.set(tokens);
    Atomics.store(ctrl, CTRL.tokens, tokens.length);
    Atomics.store(ctrl, CTRL.every, every ? 1 : 0);
    const job = Atomics.add(ctrl, CTRL.job, 1) + 1;
    Atomics.notify(ctrl, CTRL.job);
    for (;;) {
      const done = Atomics.load(ctrl, CTRL.done);
      if (done === job || Atomics.load(ctrl, CTRL.error)) break;
      const w = Atomics.waitAsync(ctrl, CTRL.done, done);
      if (w.async) await w.value;
    }
    if (Atomics.load(ctrl, CTRL.error) || failure) {
      terminate();
      throw new RwkvError(`the engine failed: ${failure ?? "a worker stopped"}`);
    }
    // Offsets past 2 GiB come back negative from the Int32 slot: read them unsigned.
    const off = Atomics.load(ctrl, CTRL.logitsOffset) >>> 0;
    const len = Atomics.load(ctrl, CTRL.logitsLength);
    return new Float32Array(buffer, off, len);
  }

  // The state whose newest values are in sharedState (held: the State brings them home when
  // read). Generation runs one state call after call, so its 2–30 MiB are not copied in and
  // out around every token.
  let resident: State | undefined;
  const pullResident = () => {
    const r = resident;
    if (!r) return;
    resident = undefined;
    State._hold(r, undefined);
    State._raw(r).set(sharedState);
  };

  function run(tokens: Int32Array, state: State, every: boolean): Promise<Float32Array> {
    const job = queue.then(async () => {
      if (terminated) throw new RwkvError("model is disposed or its engine failed");
      // Two models running one state at once would each compute from the same start and one
      // update would be lost: refuse the second (one model's calls are queued, never overlap).
      if (running.has(state)) {
        throw new UsageError("this state is being updated by another model's forward call");
      }
      running.add(state);
      try {
        if (resident !== state) {
          pullResident();
          sharedState.set(state.data); // (brings it home first if another engine holds it)
        }
        const V = spec.vocab, T = tokens.length;
        const out = new Float32Array(every ? T * V : V);
        for (let t0 = 0; t0 < T; t0 += maxT) {
          const part = tokens.subarray(t0, Math.min(T, t0 + maxT));
          const logits = await runChunk(part, every);
          if (every) out.set(logits, t0 * V);
          else if (t0 + part.length === T) out.set(logits.subarray(logits.length - V));
        }
        return finish(state, out);
      } catch (e) {
        // A failed call may have updated part of the layers: the state keeps the values it
        // had before the call when they are still its own, and is left as the engine has it
        // (unspecified) otherwise; either way the engine stops holding it.
        if (resident === state) pullResident();
        throw e;
      } finally {
        running.delete(state);
      }
    });
    queue = job.catch(() => {});
    return job;
  }

  /** After a call: the engine now holds `state`'s newest values. */
  function finish(state: State, out: Float32Array): Float32Array {
    resident = state;
    State._hold(state, () => {
      if (resident === state) pullResident();
    });
    return out;
  }

  async function dispose(): Promise<void> {
    await queue;
    pullResident();
    terminate();
  }

  return new Model(
    infoOf(
      spec,
      weights,
      ck.path,
      `fast (WebAssembly SIMD, ${threads} worker${threads > 1 ? "s" : ""})`,
    ),
    spec,
    run,
    dispose,
  );
}
