/**
 * A generation as the scheduler (`scheduler.ts`) runs it: the job, its result, its handle, and
 * the scheduler's options and counters.
 * @module
 */

import type { State } from "../model/state.ts";
import type { Sampler } from "../sample.ts";
import type { TokenLogprob } from "./logprobs.ts";

/**
 * What the scheduler needs of a constrained-decoding state (the grammar module's `Constraint`
 * has this shape): it masks impossible tokens before each draw and follows the accepted ones.
 * @example
 * ```ts
 * import { Constraint } from "../grammar/constraint.ts";
 * import type { Grammar } from "../grammar/grammar.ts";
 * import type { State } from "../model/state.ts";
 * import type { Sampler } from "../sample.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokens: number[], state: State, sampler: Sampler, g: Grammar, tok: Tokenizer;
 * const job: SequenceJob = { tokens, state, sampler, maxTokens: 64, constraint: new Constraint(g, tok) };
 * ```
 */
export interface TokenConstraint {
  /** Sets every token that cannot continue the output to −Infinity. */
  mask(logits: Float32Array): void;
  /** Advances over `token` (one that `mask` allowed). */
  accept(token: number): void;
  /** The run of tokens that must come next (may be empty): emitted without sampling. */
  forced(): number[];
  /** The output so far is a full match (it may end here). */
  readonly complete: boolean;
  /** Nothing can follow: the sequence ends now. */
  readonly finished: boolean;
}

/**
 * The waiting line is full: the caller should answer 429.
 * @example
 * ```ts
 * import type { Scheduler } from "./scheduler.ts";
 * declare const scheduler: Scheduler, job: SequenceJob;
 * try { scheduler.submit(job); } catch (e) { if (e instanceof QueueFullError) console.log(429); }
 * ```
 */
export class QueueFullError extends Error {
  /** The standard message. */
  constructor() {
    super("the server is busy: the request queue is full, retry later");
    this.name = "QueueFullError";
  }
}

/**
 * Why a sequence ended: `length` (its token budget), `stop` ({@link Sequence.stop} was called,
 * say on a stop string), `end` (the end-of-text token was drawn), `abort` (cancelled or its
 * signal fired), `error` (the forward pass failed; see {@link SequenceResult.error}).
 * @example
 * ```ts
 * declare const seq: Sequence;
 * const reason: FinishReason = (await seq.done).reason;
 * ```
 */
export type FinishReason = "length" | "stop" | "end" | "abort" | "error";

/**
 * One generation handed to {@link Scheduler.submit}.
 * @example
 * ```ts
 * import type { State } from "../model/state.ts";
 * import type { Sampler } from "../sample.ts";
 * declare const state: State, sampler: Sampler;
 * const job: SequenceJob = { tokens: [1, 2, 3], state, sampler, maxTokens: 16 };
 * ```
 */
export interface SequenceJob {
  /** Tokens to read before generating (at least one); `state` is where they continue from. */
  readonly tokens: readonly number[];
  /** The sequence's own state, updated in place (it then covers every token fed). */
  readonly state: State;
  /** Its own sampler (the caller has let it `accept` the prompt if penalties should see it). */
  readonly sampler: Sampler;
  /** Most tokens to generate (0: only read the prompt). */
  readonly maxTokens: number;
  /** Logits at ids ≥ this are never drawn (a tokenizer smaller than the model's head). */
  readonly vocabLimit?: number;
  /** Drawing this id ends the sequence (it is neither accepted nor fed). */
  readonly endToken?: number;
  /**
   * Feed the last generated token too before finishing, so that `state` covers the whole
   * text (prompt + every generated token): needed when the state is kept for a next turn.
   */
  readonly feedLast?: boolean;
  /** Prompt positions (token counts, ascending) at which {@link SequenceJob.onCheckpoint} runs. */
  readonly checkpoints?: readonly number[];
  /** The state after the first `position` prompt tokens (clone it to keep it). */
  readonly onCheckpoint?: (position: number, state: State) => void;
  /**
   * Constrained decoding: masked before every draw, told every generated token; the sequence
   * ends (reason `stop`) once it is `finished`, and its forced runs are fed without sampling.
   */
  readonly constraint?: TokenConstraint;
  /**
   * Report each generated token's log probability with this many alternatives (0–20; see
   * {@link TokenLogprob}); undefined: none. Forced runs are then fed one token per step, so
   * every token has the model's own distribution.
   */
  readonly logprobs?: number;
  /**
   * Each generated token, as soon as it is drawn (with its log probability when
   * {@link SequenceJob.logprobs} is set); may call {@link Sequence.stop}.
   */
  readonly onToken?: (token: number, logprob?: TokenLogprob) => void;
  /** Cancels the sequence (waiting or running) when it fires. */
  readonly signal?: AbortSignal;
}

/**
 * How a sequence ended.
 * @example
 * ```ts
 * declare const seq: Sequence;
 * const { reason, promptTokens, generatedTokens } = await seq.done;
 * ```
 */
export interface SequenceResult {
  /** Why it ended. */
  readonly reason: FinishReason;
  /** Prompt tokens read. */
  readonly promptTokens: number;
  /** Tokens generated (accepted; the end-of-text token is not counted). */
  readonly generatedTokens: number;
  /** Milliseconds from submission to the first generated token (undefined: none). */
  readonly firstTokenMs?: number;
  /** The failure, when `reason` is `error`. */
  readonly error?: unknown;
}

/**
 * A submitted generation.
 * @example
 * ```ts
 * import type { Scheduler } from "./scheduler.ts";
 * declare const scheduler: Scheduler, job: SequenceJob;
 * const seq = scheduler.submit(job);
 * seq.cancel(); // the client left
 * await seq.done;
 * ```
 */
export interface Sequence {
  /** Resolves when the sequence has left the scheduler (never rejects). */
  readonly done: Promise<SequenceResult>;
  /** Ends the generation with reason `stop` (after feeding the last token when `feedLast`). */
  stop(): void;
  /** Drops the sequence at once (reason `abort`); its state is then unspecified. */
  cancel(): void;
}

/**
 * Options of a {@link Scheduler}.
 * @example
 * ```ts
 * const opts: SchedulerOptions = { maxBatch: 8, maxPrefillTokensPerStep: 256, maxQueue: 64 };
 * ```
 */
export interface SchedulerOptions {
  /** Sequences running at once (default 8); more wait in line. */
  maxBatch?: number;
  /** Prompt tokens read per step across every joining sequence (default 256). */
  maxPrefillTokensPerStep?: number;
  /** Sequences allowed to wait (default 64); beyond, {@link QueueFullError}. */
  maxQueue?: number;
}

/**
 * What the scheduler is doing, for `/health`.
 * @example
 * ```ts
 * import type { Scheduler } from "./scheduler.ts";
 * declare const scheduler: Scheduler;
 * const { running, queued, steps } = scheduler.stats();
 * ```
 */
export interface SchedulerStats {
  /** Sequences in the batch (reading their prompt or generating). */
  readonly running: number;
  /** Of those, still reading their prompt. */
  readonly prefilling: number;
  /** Sequences waiting for a place in the batch. */
  readonly queued: number;
  /** Sequences that may run at once. */
  readonly maxBatch: number;
  /** Sequences that may wait. */
  readonly maxQueue: number;
  /** Prompt tokens read per step. */
  readonly maxPrefillTokensPerStep: number;
  /** Steps (forward passes) run since start. */
  readonly steps: number;
  /** Tokens generated since start. */
  readonly generatedTokens: number;
  /** Prompt tokens read since start. */
  readonly promptTokens: number;
  /** Sequences finished since start, by reason. */
  readonly finished: Readonly<Record<FinishReason, number>>;
  /** Items in the last step. */
  readonly lastStepItems: number;
  /** The last step's duration. */
  readonly lastStepMs: number;
}

/** A sequence as the scheduler tracks it. */
export class Seq implements Sequence {
  readonly job: SequenceJob;
  readonly done: Promise<SequenceResult>;
  readonly submitted = performance.now();
  resolve!: (r: SequenceResult) => void;
  /** Prompt tokens fed so far. */
  fed = 0;
  nextCheckpoint = 0;
  generated = 0;
  /** Accepted tokens not yet fed (the last drawn one, then any forced run). */
  pending: number[] = [];
  firstTokenMs: number | undefined;
  /** Set once the sequence should end: after one last feed when `finalFeed`. */
  ending: FinishReason | undefined;
  finalFeed = false;
  cancelled = false;
  finished = false;
  #wake: () => void;
  #onAbort: (() => void) | undefined;

  constructor(job: SequenceJob, wake: () => void) {
    this.job = job;
    this.#wake = wake;
    this.done = new Promise((r) => this.resolve = r);
    if (job.signal) {
      this.#onAbort = () => this.cancel();
      job.signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  stop(): void {
    if (this.finished || this.ending) return;
    this.ending = "stop";
    this.finalFeed = this.job.feedLast === true && this.pending.length > 0;
    this.#wake();
  }

  cancel(): void {
    if (this.finished) return;
    this.cancelled = true;
    this.#wake();
  }

  finish(reason: FinishReason, error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (this.#onAbort) this.job.signal!.removeEventListener("abort", this.#onAbort);
    this.resolve({
      reason,
      promptTokens: this.fed,
      generatedTokens: this.generated,
      firstTokenMs: this.firstTokenMs,
      ...(error !== undefined && { error }),
    });
  }
}
