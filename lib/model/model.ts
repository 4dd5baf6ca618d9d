/**
 * A loaded RWKV model: `forward(tokens, state)` as in the official package.
 * @module
 */

import { ModelError, UsageError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { type Compute, ReferenceCompute } from "./ops.ts";
import type { Runner } from "./runner.ts";
import { detectSpec, type ModelSpec, type RwkvVersion } from "./spec.ts";
import { State } from "./state.ts";
import type { StorageDType } from "./tensor.ts";
import { createRunnerV4 } from "./v4.ts";
import { createRunnerV5 } from "./v5.ts";
import { createRunnerV6 } from "./v6.ts";
import { createRunnerV7 } from "./v7.ts";
import { loadWeights, type WeightDType, type Weights } from "./weights.ts";

/**
 * What a loaded model is.
 * @example
 * ```ts ignore
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

/** Options of {@link createModel}. */
export interface CreateModelOptions {
  /** Storage of the large matrices (default `auto`: the checkpoint's own float type). */
  dtype?: WeightDType;
  /** Tokens per forward chunk in prompt mode (default 64). */
  chunk?: number;
  /** Loading progress: tensors done of total. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/** Builds the version's runner. */
export function createRunner(weights: Weights, c: Compute, maxT: number): Runner {
  switch (weights.layout.spec.version) {
    case "4":
      return createRunnerV4(weights, c, maxT);
    case "5.0":
    case "5.1":
    case "5.2":
      return createRunnerV5(weights, c, maxT);
    case "6":
      return createRunnerV6(weights, c, maxT);
    case "7":
      return createRunnerV7(weights, c, maxT);
  }
}

/**
 * One sequence of a {@link Model.forwardBatch} call.
 * @example
 * ```ts ignore
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
 * ```ts ignore
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
  readonly #run: (tokens: Int32Array, state: State, every: boolean) => Promise<Float32Array>;
  readonly #dispose: () => Promise<void>;
  #disposed = false;

  /** @internal Use `loadModel`. */
  constructor(
    info: ModelInfo,
    spec: ModelSpec,
    run: (tokens: Int32Array, state: State, every: boolean) => Promise<Float32Array>,
    dispose: () => Promise<void>,
  ) {
    this.info = info;
    this.spec = spec;
    this.#run = run;
    this.#dispose = dispose;
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
  forward(tokens: ArrayLike<number>, state: State): Promise<Float32Array> {
    return this.#run(this.#check(tokens, state), state, false);
  }

  /**
   * Like {@link Model.forward} but returns the logits after every token: `T × vocab`
   * values, row `t` after token `t` (for perplexity).
   */
  forwardAll(tokens: ArrayLike<number>, state: State): Promise<Float32Array> {
    return this.#run(this.#check(tokens, state), state, true);
  }

  /**
   * Runs several sequences in one call, each `{ tokens, state }` with its own state (updated in
   * place), and returns the logits after each item's last token (or, with `every`, after each
   * of its tokens: `T × vocab`), in the items' order. Items may differ in length. Each item's
   * result equals running it alone with {@link Model.forward}; states of different items never
   * mix (one state may not appear twice in a batch).
   * @example
   * ```ts ignore
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
      return this.#check(it.tokens, it.state);
    });
    const out: Float32Array[] = [];
    for (let i = 0; i < checked.length; i++) {
      out.push(await this.#run(checked[i], items[i].state, options.every === true));
    }
    return out;
  }

  /** Ends the workers and frees the weights. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#dispose();
  }
}

/** Runs a runner over any number of tokens, chunk by chunk. */
export function chunked(
  runner: Runner,
  vocab: number,
): (tokens: Int32Array, state: State, every: boolean) => Float32Array {
  return (tokens, state, every) => {
    const T = tokens.length;
    const out = new Float32Array(every ? T * vocab : vocab);
    for (let t0 = 0; t0 < T; t0 += runner.maxT) {
      const part = tokens.subarray(t0, Math.min(T, t0 + runner.maxT));
      const last = t0 + part.length === T;
      const logits = runner.forward(part, state.tensors, every);
      if (every) out.set(logits, t0 * vocab);
      else if (last) out.set(logits.subarray(logits.length - vocab));
    }
    return out;
  };
}

/** Loads a model on the plain TypeScript reference path (single thread). */
export async function createReferenceModel(
  ck: Checkpoint,
  options: CreateModelOptions = {},
): Promise<Model> {
  const spec = detectSpec(ck.tensors, ck.path);
  const { weights } = await loadWeights(ck, spec, options);
  let runner: Runner;
  try {
    runner = createRunner(weights, new ReferenceCompute(), options.chunk ?? 64);
  } catch (e) {
    if (e instanceof ModelError) throw new ModelError(`${ck.path}: ${e.message}`);
    throw e;
  }
  const run = chunked(runner, spec.vocab);
  return new Model(
    infoOf(spec, weights, ck.path, "reference (TypeScript, 1 thread)"),
    spec,
    (tokens, state, every) => Promise.resolve(run(tokens, state, every)),
    () => Promise.resolve(),
  );
}

/** The info record of loaded weights. */
export function infoOf(spec: ModelSpec, weights: Weights, path: string, engine: string): ModelInfo {
  return {
    version: spec.version,
    layers: spec.layers,
    embd: spec.embd,
    heads: spec.heads,
    headSize: spec.headSize,
    ffnDim: spec.ffnDim,
    vocab: spec.vocab,
    dtype: weights.layout.dtype,
    weightBytes: weights.layout.bytes,
    path,
    engine,
  };
}
