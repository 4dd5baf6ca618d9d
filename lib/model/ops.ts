/**
 * The seam between what RWKV computes and how a machine runs it.
 *
 * Each RWKV version's forward pass (`lib/model/v4.ts` … `v7.ts`) is written once against
 * {@link Ops}: a small set of operations over opaque buffers `B` and matrices `M` that only the
 * backend can look into. A backend implements {@link Ops} (the math) and {@link Engine} (running
 * whole passes for a {@link Model}), and owns everything about how: its memory layout, how it
 * splits work, how it synchronises, where states live. Backends today:
 * - `lib/backend/reference/`: plain TypeScript, one thread — the oracle the others are tested
 *   against;
 * - `lib/backend/wasm/`: a team of Deno Workers over one shared WebAssembly memory running SIMD
 *   kernels;
 * - `lib/backend/webgpu/`: WGSL compute shaders.
 *
 * ## The contract of {@link Ops}
 * - The version module binds its weights and asks for every scratch buffer once, when it is
 *   created ({@link Ops.buffer}, zeroed, f32); it then runs any number of passes. It never reads
 *   or writes a buffer itself: every value moves through an operation, in program order.
 * - A pass covers T tokens from one or more sequences, laid out one after another: the rows of
 *   every (T × n) buffer are tokens. Each sequence is a {@link Segment}: its rows and its own
 *   state tensors. Operations that carry information from one token to the next (token shift,
 *   recurrences) take the segments and never mix them; every other operation is per token.
 * - A buffer written by a matrix product or by a recurrence's output is written by nothing else
 *   in the pass; in-place operations (`out` = `x`) are allowed only where an operation says so.
 *   (A backend may rely on this to split products and recurrences across cores while computing
 *   the cheap per-token steps everywhere.)
 * - Weights are read only. State tensors are updated in place by the operations named so.
 * @module
 */

import type { ModelSpec } from "../spec/spec.ts";

/**
 * What the forward pass may know of a matrix: its shape.
 * @example
 * ```ts
 * const shape: MatrixShape = { rows: 1024, cols: 4096 };
 * ```
 */
export interface MatrixShape {
  /** Output size (rows of the weight, as torch stores it). */
  readonly rows: number;
  /** Input size. */
  readonly cols: number;
}

/**
 * One sequence's part of a pass: `length` tokens starting at row `start`, and the state tensors
 * of that sequence in the official order (see `lib/model/state.ts`).
 * @example
 * ```ts
 * declare const state: { tensors: Float32Array[] }; // a state's tensors as the backend holds them
 * const seg: Segment<Float32Array> = { start: 0, length: 3, state: state.tensors };
 * ```
 */
export interface Segment<B> {
  /** First row (token) of the segment in the pass's buffers. */
  readonly start: number;
  /** Number of tokens (≥ 1). */
  readonly length: number;
  /** The sequence's state tensors, in the official order. */
  readonly state: readonly B[];
}

/**
 * One product for {@link Ops.matmuls}: `y = m · x`.
 * @example
 * ```ts
 * import type { Matrix } from "./tensor.ts";
 * declare const receptance: Matrix, xr: Float32Array, r: Float32Array;
 * const p: Product<Float32Array, Matrix> = [receptance, xr, r];
 * ```
 */
export type Product<B, M> = [m: M, x: B, y: B];

/**
 * The activations of {@link Ops.act}: `tanh`, logistic `sigmoid`, `relusq` = relu(x)².
 * @example
 * ```ts
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const hidden: Float32Array, T: number, F: number;
 * ops.act("relusq", hidden, hidden, T * F);
 * ```
 */
export type Activation = "tanh" | "sigmoid" | "relusq";

/**
 * How the token shift mixes a token with the previous one, per channel with weight `m`:
 * `toPrev` = cur + (prev − cur)·m (RWKV-6/7), `toCur` = cur·m + prev·(1 − m) (RWKV-4/5),
 * `diff` = prev − cur (RWKV-6's dx; `mix` unused).
 * @example
 * ```ts
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const xn: Float32Array, kx: Float32Array, mixK: Float32Array;
 * declare const segs: Segment<Float32Array>[], layer: number, C: number;
 * ops.shift(xn, segs, layer * 3, mixK, kx, C, "toPrev");
 * ```
 */
export type ShiftForm = "toPrev" | "toCur" | "diff";

/**
 * RWKV-4's recurrence over a pass: see `wkv4TS` in `lib/backend/reference/math.ts`.
 * @example
 * ```ts
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const r: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array;
 * declare const first: Float32Array, decay: Float32Array;
 * declare const segs: Segment<Float32Array>[], A: number, s: number;
 * ops.wkv4({ A, r, k, v, first, decay, aa: s + 1, bb: s + 2, pp: s + 3, out }, segs);
 * ```
 */
export interface Wkv4Args<B> {
  /** Channels. */
  A: number;
  /** Receptance (T × A). */
  r: B;
  /** Key (T × A). */
  k: B;
  /** Value (T × A). */
  v: B;
  /** Bonus `u` (time_first, A). */
  first: B;
  /** Decay `−e^time_decay` (A). */
  decay: B;
  /** State slot of `aa` (A), updated. */
  aa: number;
  /** State slot of `bb` (A), updated. */
  bb: number;
  /** State slot of `pp` (A), updated. */
  pp: number;
  /** σ(r) ⊙ wkv (T × A). */
  out: B;
}

/**
 * RWKV-7's time mix between its products (see `v7TimeMixTS` in `lib/backend/reference/math.ts`).
 * @example
 * ```ts
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const gatesAndBuffers: Omit<V7TimeMixArgs<Float32Array>, "S" | "out">;
 * declare const out: Float32Array, segs: Segment<Float32Array>[], layer: number;
 * ops.v7TimeMix({ ...gatesAndBuffers, S: layer * 3 + 1, out }, segs);
 * ```
 */
export interface V7TimeMixArgs<B> {
  /** Heads. */
  H: number;
  /** Channels per head. */
  N: number;
  /** In-context learning rate bias (C). */
  a0: B;
  /** In-context learning rate low-rank term (T × C). */
  al: B;
  /** Decay bias (C). */
  w0: B;
  /** Decay low-rank term (T × C). */
  wl: B;
  /** Value residual bias (C); absent in layer 0. */
  v0: B | undefined;
  /** Value residual low-rank term (T × C). */
  vl: B;
  /** This layer's value (T × C). */
  v: B;
  /** Layer 0's value (T × C): layer 0 writes it, later layers read it. */
  vFirst: B;
  /** k_k (C). */
  kkW: B;
  /** k_a (C). */
  ka: B;
  /** The key (T × C). */
  k: B;
  /** Scratch: the decay (T × C). */
  wDecay: B;
  /** Scratch: the mixed value (T × C). */
  vMix: B;
  /** Scratch: normalised kk (T × C). */
  kkN: B;
  /** Scratch: kk ⊙ a (T × C). */
  kkA: B;
  /** Scratch: the rate-scaled key (T × C). */
  kMod: B;
  /** State slot of the wkv tensor (H, N, N), updated in place. */
  S: number;
  /** Receptance (T × C). */
  r: B;
  /** Scratch for the recurrence's output (T × C). */
  y: B;
  /** ln_x weight (C). */
  lnw: B;
  /** ln_x bias (C). */
  lnb: B;
  /** r_k (C). */
  rk: B;
  /** The output gate (T × C). */
  g: B;
  /** The result, input of the output product (T × C). */
  out: B;
}

/**
 * The operations a version's forward pass runs on. `B`: a buffer of f32 values; `M`: a stored
 * matrix. Vectors of weights are `B` too. Counts (`n`, `T`, `C`) are in values and tokens.
 * @example
 * ```ts
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const receptance: MatrixShape, x: Float32Array, r: Float32Array;
 * declare const lnw: Float32Array, lnb: Float32Array, maxT: number, T: number, C: number;
 * const xn = ops.buffer(maxT * C); // when binding
 * ops.norm(x, lnw, lnb, xn, C, T, 1, 1e-5); // in a pass
 * ops.matmul(receptance, xn, r, T);
 * ```
 */
export interface Ops<B, M extends MatrixShape> {
  /** A zeroed f32 scratch buffer of `n` values, made when the pass is bound. */
  buffer(n: number): B;
  /** `out[t] = row tokens[t] of emb` as f32 (the embedding look-up), T = tokens.length. */
  embed(emb: M, tokens: ArrayLike<number>, out: B): void;
  /**
   * `y[t] = m · x[t]` for T rows of `x` (T × cols → T × rows). The hot operation: nearly all
   * time goes here.
   */
  matmul(m: M, x: B, y: B, T: number): void;
  /**
   * Several independent products (no input is another's output), each as {@link matmul}.
   * `heads`: the outputs (H·N rows each) are read next only by a step split by heads (RWKV-7's
   * time mix), head h reading rows [h·N, (h + 1)·N) of each; a backend that splits that step
   * may then compute each part's own heads' rows and not meet before it.
   */
  matmuls(products: Product<B, M>[], T: number, heads?: { H: number; N: number }): void;
  /**
   * `groups` runs of `n` values normalised alone, `(x − mean)/√(var + eps)·w + b` with run g's
   * weights at `(g mod wrap)·n`; `out` may be `x`. LayerNorm over T tokens of C:
   * `norm(x, w, b, out, C, T, 1, 1e-5)`; GroupNorm over H heads: `wrap` = H.
   */
  norm(x: B, w: B, b: B, out: B, n: number, groups: number, wrap: number, eps: number): void;
  /** `out[i] = f(x[i])` for `n` values; `out` may be `x`. */
  act(kind: Activation, x: B, out: B, n: number): void;
  /**
   * The token shift: each of the segments' tokens (rows of C values of `cur`) mixed with the
   * one before it, the first with the segment's state tensor `slot`, into `out`.
   */
  shift(
    cur: B,
    segs: readonly Segment<B>[],
    slot: number,
    mix: B,
    out: B,
    C: number,
    form: ShiftForm,
  ): void;
  /** Each segment's state tensor `slot` (C values) ← the segment's last row of `src`. */
  keepLast(src: B, segs: readonly Segment<B>[], slot: number, C: number): void;
  /**
   * RWKV-6's data-dependent mixes over T tokens of C: `lerp`: out = x + dx·(base + off);
   * `decay`: out = exp(−exp(base + off)) (x, dx unused).
   */
  tmix(
    op: "lerp" | "decay",
    x: B,
    dx: B,
    base: B,
    off: B,
    out: B,
    T: number,
    C: number,
  ): void;
  /** `out[t][0..width) = src[t][offset..offset + width)` for T rows of `stride` values. */
  columns(src: B, stride: number, offset: number, width: number, out: B, T: number): void;
  /** `x[i] += y[i]` (the residual stream). */
  add(x: B, y: B, n: number): void;
  /** `x[i] += σ(r[i])·v[i]` (the RWKV-4/5/6 channel-mix output). */
  sigmoidMulAdd(r: B, v: B, x: B, n: number): void;
  /** `y[i] *= g[i]·σ(g[i])` (the RWKV-5/6 SiLU gate). */
  siluMul(g: B, y: B, n: number): void;
  /** RWKV-4's recurrence, each segment against its own state. */
  wkv4(a: Wkv4Args<B>, segs: readonly Segment<B>[]): void;
  /**
   * RWKV-5/6's recurrence, all heads, each segment against its own state tensor `slot`
   * (H, N, N as [head][key][value]); `w` holds one decay per channel (RWKV-5, H·N values) or,
   * with `decayPerToken`, one per token (RWKV-6, T × H·N). Writes `y` (T × H·N).
   */
  wkv5(
    slot: number,
    r: B,
    k: B,
    v: B,
    w: B,
    u: B,
    y: B,
    H: number,
    N: number,
    segs: readonly Segment<B>[],
    decayPerToken: boolean,
  ): void;
  /** RWKV-7's time mix (gates, recurrence, group norm, bonus, gate), each segment alone. */
  v7TimeMix(a: V7TimeMixArgs<B>, segs: readonly Segment<B>[]): void;
  /** `out` row i ← the last row of segment i of `src` (C values each): the rows the head reads. */
  lastRows(src: B, segs: readonly Segment<B>[], out: B, C: number): void;
}

/**
 * A model's weights as the forward pass sees them: vectors and matrices by official name,
 * shapes checked (a missing or mis-shaped tensor is a `ModelError` naming it).
 * @example
 * ```ts
 * declare const w: WeightSource<Float32Array, MatrixShape>, C: number;
 * const R = w.mat("blocks.0.att.receptance.weight", C, C);
 * ```
 */
export interface WeightSource<B, M extends MatrixShape> {
  /** The model's shape. */
  readonly spec: ModelSpec;
  /** Whether the checkpoint has the tensor. */
  has(name: string): boolean;
  /** A vector (its length checked when given). */
  vec(name: string, length?: number): B;
  /** A matrix (its shape checked when given). */
  mat(name: string, rows?: number, cols?: number): M;
}

/**
 * A version's forward pass bound to weights and a backend's {@link Ops}.
 * @example
 * ```ts
 * import { createRunner } from "./model.ts";
 * declare const ops: Ops<Float32Array, MatrixShape>;
 * declare const weights: WeightSource<Float32Array, MatrixShape>;
 * declare const tokens: number[], state: Float32Array[];
 * const runner = createRunner(weights, ops, 64, "model.pth");
 * const logits = runner.forward(tokens, [{ start: 0, length: tokens.length, state }], false);
 * ```
 */
export interface Runner<B> {
  /** Largest number of tokens (all segments together) one pass takes. */
  readonly maxT: number;
  /**
   * Runs `tokens` (at most `maxT`, the segments' rows one after another), updating each
   * segment's state. Returns the buffer of logits: one row of `vocab` per segment (after its
   * last token) or, with `every`, one per token. The buffer is reused by the next pass.
   */
  forward(tokens: ArrayLike<number>, segs: readonly Segment<B>[], every: boolean): B;
}

/**
 * One sequence of a batched call, as the {@link Engine} gets it (the state's values live where
 * the engine keeps them).
 * @example
 * ```ts
 * import type { State } from "./state.ts";
 * declare const state: State;
 * const item: EngineItem<State> = { tokens: Int32Array.of(510), state };
 * ```
 */
export interface EngineItem<S> {
  /** Token ids, validated. */
  readonly tokens: Int32Array;
  /** The sequence's state. */
  readonly state: S;
}

/**
 * What a {@link Model} needs from a backend: running batches of sequences, and freeing itself.
 * Calls are made one at a time (the model queues them).
 * @example
 * ```ts
 * import type { State } from "./state.ts";
 * declare const engine: Engine<State>, tokens: Int32Array, state: State;
 * const [logits] = await engine.run([{ tokens, state }], false);
 * ```
 */
export interface Engine<S> {
  /** Shown in `model.info.engine`. */
  readonly name: string;
  /**
   * Runs each item's tokens against its own state (updated), and returns per item the logits
   * after its last token (`vocab` values) or, with `every`, after each of its tokens.
   */
  run(items: readonly EngineItem<S>[], every: boolean): Promise<Float32Array[]>;
  /** Frees what the engine holds (workers, memory, device); brings held states home. */
  dispose(): Promise<void>;
}
