/**
 * The wasm backend: a team of Deno Workers started once per model over one shared WebAssembly
 * memory that holds the weights (loaded once), every buffer and a pool of state slots. Each pass
 * is one job: the main thread writes the tokens and the segments (which rows belong to which
 * state slot) into shared memory, bumps a job counter, and awaits completion with
 * `Atomics.waitAsync`, so its event loop stays free; the Workers run the whole pass SPMD and meet
 * at a barrier after each split step.
 *
 * States live in slots between calls: a state that ran keeps its newest values in its slot (the
 * `State` brings them home when read), so a generation, or many generations batched together,
 * copy nothing in or out around each token. Slots are made on demand and reused; past
 * `maxResidentStates` the least recently used state is brought home to free its slot, and a
 * state that is garbage-collected gives its slot back.
 * @module
 */

import { ModelError, RwkvError, UsageError } from "../../errors.ts";
import type { Checkpoint } from "../../formats/checkpoint.ts";
import { runPasses } from "../../model/batch.ts";
import { type CreateModelOptions, createRunner, type Model } from "../../model/model.ts";
import { prepareModel } from "../../model/prepare.ts";
import { type State, stateResidency, stateShapes } from "../../model/state.ts";
import type { Engine, EngineItem } from "../../model/ops.ts";
import { productScratchBytes } from "./_products.ts";
import { PROFILE_STRIDE } from "./_profile.ts";
import { CLAIM_SLOTS, CTRL } from "./_protocol.ts";
import { CHUNK_BYTES, GROUP_MAX } from "./_schedule.ts";
import { compileKernels, q8Paths } from "./kernels.ts";
import { KERNEL_LAYOUT } from "./layout.ts";
import { planPlacement } from "./plan.ts";
import type { WorkerInit } from "./worker.ts";

/** States a pass of some Worker team is updating now (any model of this process). */
const running = new WeakSet<State>();

/**
 * Options of {@link createWasmModel}.
 * @example
 * ```ts
 * const opts: WasmModelOptions = { dtype: "q8", threads: 2, maxResidentStates: 32 };
 * ```
 */
export interface WasmModelOptions extends CreateModelOptions {
  /** Worker threads (default: the machine's cores, at most 8). */
  threads?: number;
  /**
   * States kept in the engine's memory between calls (default 64); past it the least recently
   * used one is brought home. A batch may hold more while it runs.
   */
  maxResidentStates?: number;
  /**
   * For benchmarks: a Float64Array over a SharedArrayBuffer of at least `threads` × 16 values,
   * where each Worker adds up the milliseconds it spends in each kind of step (see `PROFILE` in
   * `_profile.ts`). Off by default (profiling costs a little).
   */
  profile?: Float64Array;
  /**
   * Weight bytes of the largest row chunks Workers claim in turn within a decoding product
   * (default 2 MiB, `CHUNK_BYTES` in `_schedule.ts`; prompts a sixteenth of it): for tests (a
   * tiny value makes every product many chunks) and tuning; results do not depend on it.
   */
  rowChunkBytes?: number;
}

/**
 * Default team size: one Worker per core, at most 8.
 * @example
 * ```ts
 * defaultThreads(); // 2 on a 2-core machine
 * ```
 */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
}

const align = (n: number) => Math.ceil(n / 64) * 64 + 64;

/** A state slot of the pool and the state whose values it holds. */
interface Slot {
  readonly offset: number;
  readonly view: Float32Array;
  state?: WeakRef<State>;
}

/**
 * Loads a checkpoint into shared memory and starts the Worker team; returns a {@link Model}
 * whose passes run on it. `dispose()` ends the Workers.
 * @example
 * ```ts
 * import { openCheckpoint } from "../../formats/open.ts";
 * const model = await createWasmModel(await openCheckpoint("model.pth"), { threads: 2, dtype: "q8" });
 * const logits = await model.forward([510, 3158], model.createState());
 * await model.dispose();
 * ```
 */
export async function createWasmModel(
  ck: Checkpoint,
  options: WasmModelOptions = {},
): Promise<Model> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new UsageError(`threads must be a whole number from 1 to 64, not ${threads}`);
  }
  const askedResident = options.maxResidentStates ?? 64;
  if (!Number.isInteger(askedResident) || askedResident < 1) {
    throw new UsageError(`maxResidentStates must be a whole number ≥ 1, not ${askedResident}`);
  }
  const chunkBytes = options.rowChunkBytes ?? CHUNK_BYTES;
  if (!(chunkBytes >= 1)) throw new UsageError(`rowChunkBytes must be ≥ 1, not ${chunkBytes}`);
  if (options.profile && options.profile.length < threads * PROFILE_STRIDE) {
    throw new UsageError(`profile needs ${threads * PROFILE_STRIDE} values`);
  }
  const module = await compileKernels();
  const q8 = await q8Paths();
  const { spec, weights, arena, maxT, done: toModel } = await prepareModel(ck, options, {
    layout: KERNEL_LAYOUT,
  });
  const matrixMemories = arena.memories.slice(1);
  const splitModule = matrixMemories.length ? await compileKernels("split") : undefined;

  // Where each buffer lives: bind the pass once to placeholders and see what writes what.
  const shapes = stateShapes(spec).map((s) => s.reduce((a, b) => a * b, 1));
  let placement;
  try {
    placement = planPlacement(
      weights,
      (w, ops) => createRunner(w, ops, maxT, ck.path),
      shapes.length,
    );
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new RwkvError(`${ck.path}: ${(e as Error).message}`);
  }
  const shared = new Set(placement.shared), sharedState = new Set(placement.sharedState);
  let sharedSize = 4096, privateSize = 8192;
  placement.sizes.forEach((n, i) => {
    if (shared.has(i)) sharedSize += align(n * 4);
    else privateSize += align(n * 4);
  });
  // the widest product input: the quantized-activation buffer of each member holds maxT of them
  let maxCols = 0;
  for (const t of Object.values(weights.layout.tensors)) {
    if (t.kind === "mat") maxCols = Math.max(maxCols, t.desc.cols);
  }
  const scratchBytes = productScratchBytes(maxT, maxCols);
  const decodeScratchBytes = productScratchBytes(1, maxCols);
  const stateLength = shapes.reduce((a, b) => a + b, 0);
  const ownLength = shapes.reduce((a, n, i) => a + (sharedState.has(i) ? 0 : n), 0);
  privateSize += scratchBytes + GROUP_MAX * align(decodeScratchBytes) +
    maxT * align(ownLength * 4);
  const total = CTRL.size * 4 + maxT * 16 + sharedSize + threads * privateSize + 64 * (threads + 8);
  arena.reserve(total);
  const ctrlOffset = arena.alloc(CTRL.size * 4);
  const tokensOffset = arena.alloc(maxT * 4);
  const segmentsOffset = arena.alloc(maxT * 12);
  const sharedOffset = arena.alloc(sharedSize);
  const privateOffsets = Array.from({ length: threads }, () => arena.alloc(privateSize));
  // the state slots, as many as the first memory can still hold (a 13.3B model's state is 62
  // MiB: 64 of them would not fit beside its buffers in 4 GiB)
  const maxResident = Math.min(askedResident, Math.floor(arena.room / (stateLength * 4 + 128)));
  if (maxResident < 1) {
    throw new RwkvError(`${ck.path}: no room for a state beside the model in 4 GiB of memory`);
  }
  const memory = arena.memory;
  const ctrl = new Int32Array(memory.buffer, ctrlOffset, CTRL.size);
  const tokensView = new Int32Array(memory.buffer, tokensOffset, maxT);
  const table = new Int32Array(memory.buffer, segmentsOffset, maxT * 3);

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
        matrixMemories,
        splitModule,
        layout: weights.layout,
        maxT,
        placement,
        ctrlOffset,
        tokensOffset,
        segmentsOffset,
        sharedOffset,
        sharedSize,
        privateOffset: privateOffsets[id],
        privateSize,
        scratchBytes,
        decodeScratchBytes,
        profile: options.profile,
        rowChunkBytes: chunkBytes,
        q8,
      };
      w.postMessage(init);
    }));
  try {
    await Promise.all(ready);
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }

  let terminated = false;
  const terminate = () => {
    if (terminated) return;
    terminated = true;
    Atomics.store(ctrl, CTRL.quit, 1);
    Atomics.add(ctrl, CTRL.job, 1);
    Atomics.notify(ctrl, CTRL.job);
    for (const w of workers) w.terminate();
  };

  // ---- the state pool ----
  const { raw, hold } = stateResidency();
  const slots: Slot[] = [], free: Slot[] = [];
  const slotOf = new WeakMap<State, Slot>();
  /** Resident slots, least recently used first. */
  const lru = new Set<Slot>();
  const release = (slot: Slot) => {
    slot.state = undefined;
    lru.delete(slot);
    free.push(slot);
  };
  const collected = new FinalizationRegistry<Slot>(release);
  /** Brings a resident state's values home and frees its slot. */
  const pull = (state: State) => {
    const slot = slotOf.get(state);
    if (!slot) return;
    slotOf.delete(state);
    collected.unregister(slot);
    hold(state, undefined);
    raw(state).set(slot.view);
    release(slot);
  };
  /** A slot holding `state`'s newest values (copied in unless already resident). */
  const place = (state: State, pinned: ReadonlySet<State>): Slot => {
    const have = slotOf.get(state);
    if (have) {
      lru.delete(have);
      lru.add(have);
      return have;
    }
    const values = state.data; // brings them home first if another engine holds them
    if (!free.length && lru.size >= maxResident) {
      for (const s of lru) {
        const st = s.state?.deref();
        if (st && !pinned.has(st)) {
          pull(st);
          break;
        }
      }
    }
    let slot = free.pop();
    if (!slot) {
      arena.reserve(stateLength * 4 + 64);
      const offset = arena.alloc(stateLength * 4);
      slot = { offset, view: new Float32Array(memory.buffer, offset, stateLength) };
      slots.push(slot);
    }
    slot.view.set(values);
    slot.state = new WeakRef(state);
    slotOf.set(state, slot);
    collected.register(state, slot, slot);
    lru.add(slot);
    hold(state, () => pull(state));
    return slot;
  };

  /** One pass: the pieces' tokens against their slots; resolves with the logits in memory. */
  async function pass(
    tokens: Int32Array,
    segs: readonly { start: number; length: number; slot: Slot }[],
    every: boolean,
  ): Promise<Float32Array> {
    tokensView.set(tokens);
    segs.forEach((s, i) => {
      table[i * 3] = s.start;
      table[i * 3 + 1] = s.length;
      table[i * 3 + 2] = s.slot.offset;
    });
    Atomics.store(ctrl, CTRL.tokens, tokens.length);
    Atomics.store(ctrl, CTRL.segments, segs.length);
    Atomics.store(ctrl, CTRL.every, every ? 1 : 0);
    // the claim counters: the last pass's claims all ended at its barriers
    for (let i = 0; i < CLAIM_SLOTS; i++) Atomics.store(ctrl, CTRL.claim + 16 * i, 0);
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
    const rows = every ? tokens.length : segs.length;
    return new Float32Array(memory.buffer, off, rows * spec.vocab);
  }

  const engine: Engine<State> = {
    name: `wasm (WebAssembly SIMD, ${threads} worker${threads > 1 ? "s" : ""}${
      arena.hugePages ? ", huge pages" : ""
    })`,
    async run(items: readonly EngineItem<State>[], every: boolean): Promise<Float32Array[]> {
      if (terminated) throw new RwkvError("model is disposed or its engine failed");
      // Two models running one state at once would each compute from the same start and one
      // update would be lost: refuse the second.
      if (items.some((it) => running.has(it.state))) {
        throw new UsageError("a state is being updated by another model's forward call");
      }
      const pinned = new Set(items.map((it) => it.state));
      for (const st of pinned) running.add(st);
      try {
        const placed = items.map((it) => place(it.state, pinned));
        return await runPasses(items, every, maxT, spec.vocab, (tokens, pieces) =>
          pass(
            tokens,
            pieces.map((p) => ({ start: p.start, length: p.length, slot: placed[p.item] })),
            every,
          ));
      } catch (e) {
        // A failed call may have updated part of the layers: the states are left as the engine
        // has them (unspecified), and the engine stops holding them.
        for (const st of pinned) pull(st);
        throw e;
      } finally {
        for (const st of pinned) running.delete(st);
      }
    },
    dispose(): Promise<void> {
      for (const s of [...lru]) {
        const st = s.state?.deref();
        if (st) pull(st);
      }
      terminate();
      return Promise.resolve();
    },
  };
  return toModel(engine);
}

/**
 * Old name of {@link createWasmModel}.
 * @deprecated Use {@link createWasmModel} (the backend is called `wasm` everywhere now).
 * @example
 * ```ts
 * import type { Checkpoint } from "../../formats/checkpoint.ts";
 * declare const ck: Checkpoint;
 * const model = await createFastModel(ck, { threads: 2 }); // = createWasmModel(ck, { threads: 2 })
 * ```
 */
export const createFastModel: typeof createWasmModel = createWasmModel;

/**
 * Old name of {@link WasmModelOptions}.
 * @deprecated Use {@link WasmModelOptions}.
 * @example
 * ```ts
 * const opts: FastModelOptions = { threads: 2 };
 * ```
 */
export type FastModelOptions = WasmModelOptions;
