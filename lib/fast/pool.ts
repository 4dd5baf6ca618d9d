/**
 * The fast engine: Deno Workers started once per model over one shared WebAssembly memory
 * holding the weights and every buffer. The main thread hands over a whole forward pass per
 * call and awaits it without blocking its event loop.
 * @module
 */

import { ModelError, RwkvError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { type CreateModelOptions, createRunner, infoOf, Model } from "../model/model.ts";
import { detectSpec } from "../model/spec.ts";
import type { State } from "../model/state.ts";
import { loadWeights } from "../model/weights.ts";
import { CountingCompute, CTRL } from "./compute.ts";
import { compileKernels } from "./kernels.ts";
import type { WorkerInit } from "./worker.ts";

/** Options of {@link createFastModel}. */
export interface FastModelOptions extends CreateModelOptions {
  /** Worker threads (default: the machine's cores, at most 8). */
  threads?: number;
}

/** Default worker count: one per core, at most 8. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
}

/**
 * Loads a checkpoint into shared memory and starts the worker team.
 * @example
 * ```ts ignore
 * const model = await createFastModel(await openCheckpoint("model.pth"), { threads: 2, dtype: "q8" });
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
  const spec = detectSpec(ck.tensors, ck.path);
  const module = await compileKernels();
  const { weights, arena } = await loadWeights(ck, spec, options);
  // Size the buffers by binding the math once to a counting machine.
  const count = new CountingCompute();
  try {
    const dry = createRunner(weights, count, maxT);
    void dry;
  } catch (e) {
    if (e instanceof ModelError) throw new ModelError(`${ck.path}: ${e.message}`);
    throw e;
  }
  const maxActivations = maxT * Math.max(spec.ffnDim, spec.embd, spec.attDim, 5 * 64 * 4);
  const stateLength = weights.layout.spec.version === "4"
    ? spec.layers * (2 * spec.embd + 3 * spec.attDim)
    : spec.layers * (2 * spec.embd + spec.heads * spec.headSize * spec.headSize);
  const privateSize = count.private + stateLength * 4 + maxActivations * 1.25 + 4096;
  const sharedSize = count.shared + 4096;
  const total = 64 * CTRL.size + maxT * 4 + stateLength * 4 + sharedSize + threads * privateSize +
    64 * 8;
  arena.reserve(total);
  const ctrlOffset = arena.alloc(CTRL.size * 4);
  const tokensOffset = arena.alloc(maxT * 4);
  const stateOffset = arena.alloc(stateLength * 4);
  const sharedOffset = arena.alloc(sharedSize);
  const privateOffsets = Array.from({ length: threads }, () => arena.alloc(privateSize));
  const memory = arena.memory;
  const ctrl = () => new Int32Array(memory.buffer, ctrlOffset, CTRL.size);
  const sharedState = () => new Float32Array(memory.buffer, stateOffset, stateLength);
  const tokensView = () => new Int32Array(memory.buffer, tokensOffset, maxT);

  const workers: Worker[] = [];
  let failure: string | undefined;
  const ready = Array.from({ length: threads }, (_, id) =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      workers.push(w);
      w.onmessage = (e) => {
        if (e.data?.ready) resolve();
        else if (e.data?.error) {
          failure = e.data.error;
          reject(new RwkvError(`engine worker ${id} failed: ${e.data.error}`));
        }
      };
      w.onerror = (e) => {
        e.preventDefault();
        failure = e.message;
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
        maxActivations,
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
  let disposed = false;

  async function runChunk(tokens: Int32Array, every: boolean): Promise<Float32Array> {
    const c = ctrl();
    tokensView().set(tokens);
    Atomics.store(c, CTRL.tokens, tokens.length);
    Atomics.store(c, CTRL.every, every ? 1 : 0);
    const prevDone = Atomics.load(c, CTRL.done);
    const job = Atomics.add(c, CTRL.job, 1) + 1;
    Atomics.notify(c, CTRL.job);
    while (Atomics.load(c, CTRL.done) !== job) {
      const w = Atomics.waitAsync(c, CTRL.done, prevDone);
      if (w.async) await w.value;
    }
    if (Atomics.load(c, CTRL.error) || failure) {
      throw new RwkvError(`the engine failed: ${failure ?? "a worker stopped"}`);
    }
    const off = Atomics.load(c, CTRL.logitsOffset), len = Atomics.load(c, CTRL.logitsLength);
    return new Float32Array(memory.buffer, off, len).slice();
  }

  function run(tokens: Int32Array, state: State, every: boolean): Promise<Float32Array> {
    const job = queue.then(async () => {
      if (disposed) throw new RwkvError("model is disposed");
      sharedState().set(state.data);
      const V = spec.vocab, T = tokens.length;
      const out = new Float32Array(every ? T * V : V);
      for (let t0 = 0; t0 < T; t0 += maxT) {
        const part = tokens.subarray(t0, Math.min(T, t0 + maxT));
        const logits = await runChunk(part, every);
        if (every) out.set(logits, t0 * V);
        else if (t0 + part.length === T) out.set(logits.subarray(logits.length - V));
      }
      state.data.set(sharedState());
      return out;
    });
    queue = job.catch(() => {});
    return job;
  }

  async function dispose(): Promise<void> {
    await queue;
    disposed = true;
    const c = ctrl();
    Atomics.store(c, CTRL.quit, 1);
    Atomics.add(c, CTRL.job, 1);
    Atomics.notify(c, CTRL.job);
    for (const w of workers) w.terminate();
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
