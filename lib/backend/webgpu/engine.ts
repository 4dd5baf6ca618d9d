/**
 * A model on the WebGPU backend: weights uploaded once, states kept in slots on the device, one
 * submission per pass.
 * @module
 */

import { ModelError, UsageError } from "../../errors.ts";
import type { Checkpoint } from "../../formats/checkpoint.ts";
import { runPasses } from "../../model/batch.ts";
import { type CreateModelOptions, createRunner, type Model } from "../../model/model.ts";
import { prepareModel } from "../../model/prepare.ts";
import type { ModelSpec } from "../../spec/spec.ts";
import { type State, stateResidency, stateShapes } from "../../model/state.ts";
import { checkShape } from "../../model/weights.ts";
import type { Engine, EngineItem, WeightSource } from "../../model/ops.ts";
import { type AdapterChoice, openGpu } from "./device.ts";
import { fileLayout, type GpuBuf, type GpuMatrix } from "./_matrices.ts";
import { GpuOps } from "./ops.ts";

/**
 * Options of {@link createWebGpuModel}.
 * @example
 * ```ts
 * const opts: WebGpuModelOptions = { dtype: "q8", adapter: "hardware", states: 8 };
 * ```
 */
export interface WebGpuModelOptions extends CreateModelOptions {
  /** Which adapters to accept (default `any`: a software adapter too). */
  adapter?: AdapterChoice;
  /** States kept on the device at once (default: 16, fewer when they do not fit a binding). */
  states?: number;
  /** Invocations per matrix row (default: 1 on a software adapter, 32 on a GPU). */
  threadsPerRow?: number;
  /**
   * Largest bytes of one matrix part (default and upper bound: the device's storage binding
   * limit); smaller values split matrices into more parts, as a big model's would be.
   */
  maxPartBytes?: number;
}

/** The weights on the device, by official name, with the shape checks of `Weights`. */
class GpuWeights implements WeightSource<GpuBuf, GpuMatrix> {
  readonly spec: ModelSpec;
  readonly #vecs = new Map<string, GpuBuf>();
  readonly #mats = new Map<string, GpuMatrix>();

  constructor(spec: ModelSpec) {
    this.spec = spec;
  }

  set(name: string, t: GpuBuf | GpuMatrix): void {
    if ("at" in t) this.#vecs.set(name, t);
    else this.#mats.set(name, t);
  }

  has(name: string): boolean {
    return this.#vecs.has(name) || this.#mats.has(name);
  }

  vec(name: string, length?: number): GpuBuf {
    const v = this.#vecs.get(name);
    if (!v) {
      throw new ModelError(
        this.#mats.has(name)
          ? `tensor ${name} is a matrix, expected a vector`
          : `missing tensor ${name}`,
      );
    }
    checkShape(name, v.length, 1, length, 1);
    return v;
  }

  mat(name: string, rows?: number, cols?: number): GpuMatrix {
    const m = this.#mats.get(name);
    if (!m) {
      throw new ModelError(
        this.#vecs.has(name)
          ? `tensor ${name} is a vector, expected a matrix`
          : `missing tensor ${name}`,
      );
    }
    checkShape(name, m.rows, m.cols, rows, cols);
    return m;
  }
}

/** A state slot on the device. */
interface Slot {
  /** Its tensors, in the official order. */
  tensors: GpuBuf[];
  /** The state it holds, if any. */
  state: WeakRef<State> | undefined;
  /** The slot holds the state's newest values and the state's own array equals them. */
  fresh: boolean;
}

/**
 * Loads a checkpoint onto a WebGPU device. Matrices are uploaded once in the quantized file's
 * layout (split by rows where one exceeds a storage binding); states live in slots on the device
 * between calls (a state whose slot is current is not uploaded again); each pass is recorded,
 * submitted once, and only the logits and the touched states are read back.
 * @example
 * ```ts
 * import { openCheckpoint } from "../../formats/open.ts";
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
  const maxT = options.chunk ?? 64;
  const gpu = await openGpu({ adapter: options.adapter, threadsPerRow: options.threadsPerRow });
  let ops: GpuOps | undefined;
  try {
    // the CPU arena only stages the weights on their way to the GPU: no huge pages for it
    const { spec, weights, done } = await prepareModel(ck, { ...options, hugePages: false });
    ops = new GpuOps(gpu, maxT, { maxPartBytes: options.maxPartBytes });
    const source = new GpuWeights(spec);
    for (const [name, d] of Object.entries(weights.layout.tensors)) {
      if (d.kind === "vec") source.set(name, ops.vector(weights.vec(name)));
      else {
        try {
          source.set(name, ops.addMatrix(fileLayout(weights.mat(name))));
        } catch (e) {
          throw new ModelError(`${ck.path}: tensor ${name}: ${(e as Error).message}`);
        }
      }
    }
    const runner = createRunner(source, ops, maxT, ck.path);
    // the state slots, as many as fit beside the buffers in one binding
    const sizes = stateShapes(spec).map((s) => s.reduce((a, b) => a * b, 1));
    const stateLength = sizes.reduce((a, b) => a + b, 0);
    const room = Math.floor(gpu.maxBinding / 4 / 2 / (stateLength + 64 * sizes.length));
    const count = Math.max(1, Math.min(options.states ?? 16, room));
    const slots: Slot[] = Array.from({ length: count }, () => ({
      tensors: sizes.map((n) => ops!.buffer(n)),
      state: undefined,
      fresh: false,
    }));
    ops.seal();
    return done(gpuEngine(ops, runner, slots, spec, stateLength));
  } catch (e) {
    if (ops) ops.destroy();
    else gpu.destroy();
    throw e;
  }
}

/** The engine: places states in slots, runs the passes, brings values back. */
function gpuEngine(
  ops: GpuOps,
  runner: ReturnType<typeof createRunner<GpuBuf, GpuMatrix>>,
  slots: Slot[],
  spec: ModelSpec,
  stateLength: number,
): Engine<State> {
  const { raw, hold } = stateResidency();
  const slotOf = new WeakMap<State, Slot>();
  const lru = new Set<Slot>(); // slots in use, least recently used first
  let disposed = false;

  /** Forgets which state a slot holds (its values are already home: `fresh` or pulled). */
  const release = (slot: Slot) => {
    const st = slot.state?.deref();
    if (st) {
      slotOf.delete(st);
      hold(st, undefined);
    }
    slot.state = undefined;
    slot.fresh = false;
    lru.delete(slot);
  };

  /** A slot for `state`, its values written in unless the slot already holds them. */
  const place = (state: State, pinned: ReadonlySet<State>): Slot => {
    const have = slotOf.get(state);
    if (have?.fresh) {
      lru.delete(have);
      lru.add(have);
      return have;
    }
    if (have) release(have);
    const values = state.data; // brings them home if another engine holds them
    let slot = slots.find((s) => !s.state?.deref());
    if (!slot) {
      slot = [...lru].find((s) => !pinned.has(s.state!.deref()!))!;
      release(slot);
    }
    let at = 0;
    for (const t of slot.tensors) ops.write(t, values.subarray(at, at += t.length));
    slot.state = new WeakRef(state);
    slotOf.set(state, slot);
    lru.add(slot);
    return slot;
  };

  const runGroup = async (items: readonly EngineItem<State>[], every: boolean) => {
    const pinned = new Set(items.map((it) => it.state));
    const placed = items.map((it) => place(it.state, pinned));
    for (const s of placed) s.fresh = false; // until read back
    const passes = Math.ceil(items.reduce((n, it) => n + it.tokens.length, 0) / runner.maxT);
    let done = 0;
    const results = await runPasses(items, every, runner.maxT, spec.vocab, async (tokens, pcs) => {
      const segs = pcs.map((p) => ({
        start: p.start,
        length: p.length,
        state: placed[p.item].tensors,
      }));
      ops.beginPass(tokens, segs);
      const logits = runner.forward(tokens, segs, every);
      const rows = every ? tokens.length : pcs.length;
      // the states come back with the last pass's logits
      const last = ++done === passes;
      const states = last ? placed.flatMap((s) => s.tensors) : [];
      const [values, ...tensors] = await ops.submit([[logits, rows * spec.vocab], ...states]);
      if (last) {
        items.forEach((it, i) => {
          const home = raw(it.state);
          let at = 0;
          for (const t of tensors.slice(i * placed[i].tensors.length)) {
            if (at >= stateLength) break;
            home.set(t, at);
            at += t.length;
          }
          placed[i].fresh = true;
          // reading the state lets its owner change it: the slot must then be written again
          hold(it.state, () => {
            placed[i].fresh = false;
            hold(it.state, undefined);
          });
        });
      }
      return values;
    });
    return results;
  };

  return {
    name: `webgpu (${ops.gpu.adapterName}${ops.gpu.isFallback ? ", software" : ""})`,
    async run(items, every) {
      if (disposed) throw new UsageError("model is disposed");
      const out: Float32Array[] = [];
      try {
        // at most as many sequences per group as there are slots
        for (let i = 0; i < items.length; i += slots.length) {
          out.push(...await runGroup(items.slice(i, i + slots.length), every));
        }
      } catch (e) {
        // a failed pass may have updated part of the layers: the slots no longer hold values
        // anyone can trust, and the states keep what they had at home
        for (const s of slots) release(s);
        throw e;
      }
      return out;
    },
    dispose() {
      if (disposed) return Promise.resolve();
      disposed = true;
      for (const s of slots) release(s);
      ops.destroy();
      return Promise.resolve();
    },
  };
}
