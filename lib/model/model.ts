/**
 * A loaded RWKV model: `forward(tokens, state)` as in the official package.
 * @module
 */

import type { Engine, MatrixShape, Ops, Runner, WeightSource } from "./ops.ts";
import { ModelError, UsageError } from "../errors.ts";
import type { ModelSpec, RwkvVersion } from "../spec/spec.ts";
import { State } from "./state.ts";
import type { StorageDType } from "./tensor.ts";
import { createRunnerV4 } from "./v4.ts";
import { createRunnerV5 } from "./v5.ts";
import { createRunnerV6 } from "./v6.ts";
import { createRunnerV7 } from "./v7.ts";
import type { WeightDType } from "./weights.ts";

/**
 * What a loaded model is.
 * @example
 * ```ts
 * declare const model: Model;
 * const { version, layers, embd, dtype } = model.info; // "7", 12, 768, "bf16"
 * ```
 */
export interface ModelInfo {
  /** RWKV version as the official package names it ("4", "5.2", "7", …). */
  readonly version: RwkvVersion;
  /** Number of blocks. */
  readonly layers: number;
  /** Embedding width C. */
  readonly embd: number;
  /** Attention heads (1 for RWKV-4). */
  readonly heads: number;
  /** Channels per head. */
  readonly headSize: number;
  /** Hidden width of the channel mix. */
  readonly ffnDim: number;
  /** Vocabulary size (logits per token). */
  readonly vocab: number;
  /** Storage of the large matrices in memory. */
  readonly dtype: StorageDType;
  /** Bytes of weights in memory. */
  readonly weightBytes: number;
  /** The file it was loaded from. */
  readonly path: string;
  /** How the forward pass runs. */
  readonly engine: string;
}

/**
 * Options every backend's loader takes.
 * @example
 * ```ts
 * const opts: CreateModelOptions = { dtype: "bf16", chunk: 64 };
 * ```
 */
export interface CreateModelOptions {
  /** Storage of the large matrices (default `auto`: the checkpoint's own float type). */
  dtype?: WeightDType;
  /** Tokens per forward chunk in prompt mode (default 64). */
  chunk?: number;
  /** Loading progress: tensors done of total. */
  onProgress?: (done: number, total: number, name: string) => void;
  /**
   * Bytes the model may take (default: what the system has available now, `MemAvailable` on
   * Linux): one that needs more is refused with an `OutOfMemoryError` before anything large is
   * allocated, saying which dtype would fit.
   */
  availableMemory?: number;
  /**
   * Matrices in CPU memories of their own of at most this many bytes each (`Arena`): the path
   * of models too large for one 4 GiB WebAssembly memory, taken by default beyond 3 GiB of
   * weights (`SINGLE_MEMORY_BYTES`); the Worker backend reads them through its kernels' `split`
   * build. A small value sends a small model down that path (tests); 0 keeps one memory.
   */
  matrixMemoryBytes?: number;
  /**
   * Asks Linux for transparent huge pages (2 MiB) for the weights' CPU memories (default
   * false): a token streams every weight, and reads them faster so (2.9B q8 and q4: 1.03–1.05×
   * in one process, q4 up to 1.25× between runs), but the load may take seconds longer while the
   * kernel compacts memory to find them (the `chat` and `serve` CLIs ask, as they load once).
   * Needs FFI permission (`-A` or `--allow-ffi`); without it, elsewhere than Linux, or where the
   * kernel's mode is `never`, the pages stay 4 KiB. `RWKV_HUGE_PAGES=1` or `=0` overrides it for
   * a process.
   */
  hugePages?: boolean;
}

/**
 * Binds the version's forward pass to weights and a backend's operations, for up to `maxT`
 * tokens a pass. A missing or mis-shaped tensor is a `ModelError` naming `file` and the tensor.
 * @example
 * ```ts
 * import { ReferenceOps } from "../backend/reference/ops.ts";
 * import type { WeightSource } from "./ops.ts";
 * import type { Matrix } from "./tensor.ts";
 * declare const weights: WeightSource<Float32Array, Matrix>;
 * const runner = createRunner(weights, new ReferenceOps(), 64, "model.pth");
 * ```
 */
export function createRunner<B, M extends MatrixShape>(
  weights: WeightSource<B, M>,
  ops: Ops<B, M>,
  maxT: number,
  file: string,
): Runner<B> {
  try {
    switch (weights.spec.version) {
      case "4":
        return createRunnerV4(weights, ops, maxT);
      case "5.0":
      case "5.1":
      case "5.2":
        return createRunnerV5(weights, ops, maxT);
      case "6":
        return createRunnerV6(weights, ops, maxT);
      case "7":
        return createRunnerV7(weights, ops, maxT);
    }
  } catch (e) {
    if (e instanceof ModelError) throw new ModelError(`${file}: ${e.message}`);
    throw e;
  }
}

let make: (engine: Engine<State>, info: ModelInfo, spec: ModelSpec) => Model;

/**
 * A {@link Model} over a backend's {@link Engine}: what a backend's loader returns. `info` is the
 * model's description (see {@link describeWeights}) less the engine's name, which the engine
 * gives. Also how a script wraps a model (say, to count or delay its calls).
 * @example
 * ```ts
 * declare const inner: Model;
 * let calls = 0;
 * const counted = newModel({
 *   name: "counting",
 *   run: (items, every) => { calls++; return inner.forwardBatch(items, { every }); },
 *   dispose: () => Promise.resolve(),
 * }, inner.spec, inner.info);
 * ```
 */
export function newModel(
  engine: Engine<State>,
  spec: ModelSpec,
  info: Omit<ModelInfo, "engine">,
): Model {
  return make(engine, { ...info, engine: engine.name }, spec);
}

/**
 * The description of a model loaded from `path` with weights of `layout`.
 * @example
 * ```ts
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * import type { ModelSpec } from "../spec/spec.ts";
 * import type { Engine } from "./ops.ts";
 * import type { State } from "./state.ts";
 * import type { WeightsLayout } from "./weights.ts";
 * declare const engine: Engine<State>, spec: ModelSpec, ck: Checkpoint;
 * declare const weights: { layout: WeightsLayout };
 * newModel(engine, spec, describeWeights(spec, weights.layout, ck.path));
 * ```
 */
export function describeWeights(
  spec: ModelSpec,
  layout: { readonly dtype: StorageDType; readonly bytes: number },
  path: string,
): Omit<ModelInfo, "engine"> {
  return {
    version: spec.version,
    layers: spec.layers,
    embd: spec.embd,
    heads: spec.heads,
    headSize: spec.headSize,
    ffnDim: spec.ffnDim,
    vocab: spec.vocab,
    dtype: layout.dtype,
    weightBytes: layout.bytes,
    path,
  };
}

/**
 * One sequence of a {@link Model.forwardBatch} call.
 * @example
 * ```ts
 * declare const model: Model;
 * const item: BatchItem = { tokens: [510, 3158], state: model.createState() };
 * ```
 */
export interface BatchItem {
  /** Token ids to run (at least one). */
  readonly tokens: ArrayLike<number>;
  /** The sequence's own state, updated in place. */
  readonly state: State;
}

/**
 * An RWKV model ready to run. Create it with `loadModel` (in `mod.ts`).
 * @example
 * ```ts
 * import { loadModel } from "../load.ts";
 * const model = await loadModel("model.pth");
 * const state = model.createState();
 * const logits = await model.forward([510, 3158], state); // state updated in place
 * const perToken = await model.forwardAll([510, 3158], model.createState()); // T × vocab
 * await model.dispose();
 * ```
 */
export class Model {
  /** Version, sizes and storage. */
  readonly info: ModelInfo;
  /** The shape used by states. */
  readonly spec: ModelSpec;
  readonly #engine: Engine<State>;
  #queue: Promise<unknown> = Promise.resolve();
  #disposed = false;

  private constructor(engine: Engine<State>, info: ModelInfo, spec: ModelSpec) {
    this.info = info;
    this.spec = spec;
    this.#engine = engine;
  }

  static {
    make = (engine, info, spec) => new Model(engine, info, spec);
  }

  /**
   * The values new states start from: a tuned state (`blocks.N.att.time_state`, see
   * `time_state.ts`), set by `loadModel` when the checkpoint has one. Undefined: zeros.
   */
  initialState?: State;

  /** A new recurrent state: a copy of {@link Model.initialState}, else zeroed. */
  createState(): State {
    return this.initialState ? this.initialState.clone() : new State(this.spec);
  }

  #check(tokens: ArrayLike<number>, state: State): Int32Array {
    if (this.#disposed) throw new UsageError("model is disposed");
    if (tokens.length === 0) throw new UsageError("forward needs at least one token");
    if (state.spec !== this.spec && JSON.stringify(state.spec) !== JSON.stringify(this.spec)) {
      throw new UsageError("state belongs to a model of another shape");
    }
    const ids = Int32Array.from(tokens);
    for (let i = 0; i < ids.length; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= this.spec.vocab) {
        throw new UsageError(
          `token id ${t} at position ${i} is outside the vocabulary 0..${this.spec.vocab - 1}`,
        );
      }
    }
    return ids;
  }

  /**
   * Runs `tokens` and returns the logits after the last one (a new Float32Array of `vocab`
   * values); `state` is updated in place. Many tokens at once use prompt mode.
   */
  async forward(tokens: ArrayLike<number>, state: State): Promise<Float32Array> {
    return (await this.#run([{ tokens: this.#check(tokens, state), state }], false))[0];
  }

  /**
   * Like {@link Model.forward} but returns the logits after every token: `T × vocab`
   * values, row `t` after token `t` (for perplexity).
   */
  async forwardAll(tokens: ArrayLike<number>, state: State): Promise<Float32Array> {
    return (await this.#run([{ tokens: this.#check(tokens, state), state }], true))[0];
  }

  /**
   * Runs several sequences in one call, each `{ tokens, state }` with its own state (updated in
   * place), and returns the logits after each item's last token (or, with `every`, after each
   * of its tokens: `T × vocab`), in the items' order. Items may differ in length. Each item's
   * result equals running it alone with {@link Model.forward}; states of different items never
   * mix (one state may not appear twice in a batch).
   * @example
   * ```ts
   * import type { State } from "./state.ts";
   * declare const model: Model, s1: State, s2: State, promptTokens: number[], lastToken: number;
   * const [a, b] = await model.forwardBatch([
   *   { tokens: promptTokens, state: s1 },  // a prompt joining
   *   { tokens: [lastToken], state: s2 },   // a running generation's next token
   * ]);
   * ```
   */
  async forwardBatch(
    items: readonly BatchItem[],
    options: { every?: boolean } = {},
  ): Promise<Float32Array[]> {
    const seen = new Set<State>();
    const checked = items.map((it, i) => {
      if (seen.has(it.state)) {
        throw new UsageError(`batch item ${i}: its state appears twice in the batch`);
      }
      seen.add(it.state);
      return { tokens: this.#check(it.tokens, it.state), state: it.state };
    });
    if (!checked.length) return [];
    return await this.#run(checked, options.every === true);
  }

  /** Queues one engine call: a model runs one call at a time, in the order they were made. */
  #run(items: { tokens: Int32Array; state: State }[], every: boolean): Promise<Float32Array[]> {
    const job = this.#queue.then(() => this.#engine.run(items, every));
    this.#queue = job.catch(() => {});
    return job;
  }

  /**
   * Frees what the backend holds (workers, memory, device) once pending calls are done; held
   * states are brought home first. Safe to call twice. `await using` calls it at scope end.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue;
    await this.#engine.dispose();
  }

  /** Disposes the model at the end of an `await using` scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
