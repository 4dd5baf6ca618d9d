/**
 * Continuous batching: one loop owns the model and, at every step, runs one
 * `model.forwardBatch` over the next token of every running sequence plus a bounded slice of
 * the prompts still being read (chunked prefill), then samples each sequence with its own
 * sampler. Sequences join at the next step and leave as soon as they are done, stopped or
 * cancelled (a cancelled sequence is gone after the step in flight: its slot is free within
 * one step).
 *
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * import { Sampler } from "../sample.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const scheduler = new Scheduler(model, { maxBatch: 8, maxPrefillTokensPerStep: 256 });
 * const seq = scheduler.submit({
 *   tokens: tokenizer.encode("Hello"), state: model.createState(),
 *   sampler: new Sampler({ temperature: 0 }), maxTokens: 20,
 *   onToken: (t) => console.log(t),
 * });
 * console.log((await seq.done).reason); // "length"
 * ```
 * @module
 */

import { setImmediate } from "node:timers";
import type { BatchItem, Model } from "../model/model.ts";
import { type TokenLogprob, tokenLogprob } from "./logprobs.ts";
import {
  type FinishReason,
  QueueFullError,
  type SchedulerOptions,
  type SchedulerStats,
  Seq,
  type Sequence,
  type SequenceJob,
} from "./_sequence.ts";

export {
  type FinishReason,
  QueueFullError,
  type SchedulerOptions,
  type SchedulerStats,
  type Sequence,
  type SequenceJob,
  type SequenceResult,
  type TokenConstraint,
} from "./_sequence.ts";

/** Runs a caller's callback; one that throws cancels its own sequence, not the loop. */
function guard(s: Seq, f: () => void): void {
  try {
    f();
  } catch (e) {
    console.error("server: a sequence callback failed:", e);
    s.cancel();
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  return v;
}

/**
 * Runs many generations on one model, batched step by step (see the module doc).
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * declare const model: Model, jobA: SequenceJob, jobB: SequenceJob;
 * const scheduler = new Scheduler(model, { maxBatch: 4 });
 * const a = scheduler.submit(jobA), b = scheduler.submit(jobB); // share every forward pass
 * await Promise.all([a.done, b.done]);
 * ```
 */
export class Scheduler {
  /** The model it runs. */
  readonly model: Model;
  /** See {@link SchedulerOptions.maxBatch}. */
  readonly maxBatch: number;
  /** See {@link SchedulerOptions.maxQueue}. */
  readonly maxQueue: number;
  /** See {@link SchedulerOptions.maxPrefillTokensPerStep}. */
  readonly maxPrefillTokensPerStep: number;
  #waiting: Seq[] = [];
  #running: Seq[] = [];
  #looping = false;
  #steps = 0;
  #generated = 0;
  #prompt = 0;
  #finished: Record<FinishReason, number> = { length: 0, stop: 0, end: 0, abort: 0, error: 0 };
  #lastItems = 0;
  #lastMs = 0;
  #closed = false;

  /** A scheduler over `model` (it must not run other calls meanwhile on the same states). */
  constructor(model: Model, options: SchedulerOptions = {}) {
    this.model = model;
    this.maxBatch = positiveInt("maxBatch", options.maxBatch ?? 8);
    this.maxPrefillTokensPerStep = positiveInt(
      "maxPrefillTokensPerStep",
      options.maxPrefillTokensPerStep ?? 256,
    );
    const q = options.maxQueue ?? 64;
    if (!Number.isInteger(q) || q < 0) throw new RangeError("maxQueue must be a whole number ≥ 0");
    this.maxQueue = q;
  }

  /**
   * Adds a generation; it joins the batch at the next step with room. Throws
   * {@link QueueFullError} when the batch and the line are both full.
   */
  submit(job: SequenceJob): Sequence {
    if (this.#closed) throw new Error("the scheduler is closed");
    if (job.tokens.length === 0) throw new RangeError("a sequence needs at least one token");
    if (!Number.isInteger(job.maxTokens) || job.maxTokens < 0) {
      throw new RangeError("maxTokens must be a whole number ≥ 0");
    }
    const busy = this.#running.length + this.#waiting.length;
    if (busy >= this.maxBatch && this.#waiting.length >= this.maxQueue) {
      throw new QueueFullError();
    }
    const seq = new Seq(job, () => this.#wake());
    if (job.signal?.aborted) {
      seq.finish("abort");
      this.#finished.abort++;
      return seq;
    }
    this.#waiting.push(seq);
    this.#wake();
    return seq;
  }

  /** Live counters. */
  stats(): SchedulerStats {
    return {
      running: this.#running.length,
      prefilling: this.#running.filter((s) => s.fed < s.job.tokens.length).length,
      queued: this.#waiting.length,
      maxBatch: this.maxBatch,
      maxQueue: this.maxQueue,
      maxPrefillTokensPerStep: this.maxPrefillTokensPerStep,
      steps: this.#steps,
      generatedTokens: this.#generated,
      promptTokens: this.#prompt,
      finished: { ...this.#finished },
      lastStepItems: this.#lastItems,
      lastStepMs: this.#lastMs,
    };
  }

  /** Cancels everything and refuses new work. */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#waiting, ...this.#running]) s.cancel();
    this.#wake();
  }

  #wake(): void {
    if (!this.#looping) {
      this.#looping = true;
      this.#loop();
    }
  }

  #end(seq: Seq, reason: FinishReason, error?: unknown): void {
    this.#finished[reason]++;
    seq.finish(reason, error);
  }

  /** Drops cancelled and finished sequences, lets waiting ones join. */
  #tidy(): void {
    this.#waiting = this.#waiting.filter((s) => {
      if (s.cancelled) this.#end(s, "abort");
      return !s.cancelled;
    });
    this.#running = this.#running.filter((s) => {
      if (s.cancelled) this.#end(s, "abort");
      else if (s.ending && !s.finalFeed) this.#end(s, s.ending);
      else return true;
      return false;
    });
    while (this.#running.length < this.maxBatch && this.#waiting.length) {
      this.#running.push(this.#waiting.shift()!);
    }
  }

  async #loop(): Promise<void> {
    // Bounded by the work submitted: each pass either runs a step or returns when idle.
    for (;;) {
      // Let I/O in between steps (new requests, disconnects): an engine that computes on this
      // thread would otherwise hold the event loop until every sequence ends. setImmediate
      // costs ~20 µs; setTimeout(0) ~2.6 ms here.
      await new Promise((r) => setImmediate(r));
      this.#tidy();
      if (this.#running.length === 0) {
        this.#looping = false; // synchronously: a later submit starts a new loop
        return;
      }
      const items: BatchItem[] = [];
      const owners: Seq[] = [];
      let budget = this.maxPrefillTokensPerStep;
      for (const s of this.#running) {
        if (s.fed >= s.job.tokens.length) {
          items.push({ tokens: s.pending, state: s.job.state });
          owners.push(s);
        }
      }
      for (const s of this.#running) {
        const left = s.job.tokens.length - s.fed;
        if (left === 0 || budget === 0) continue;
        let n = Math.min(left, budget);
        const cps = s.job.checkpoints;
        while (cps && s.nextCheckpoint < cps.length && cps[s.nextCheckpoint] <= s.fed) {
          s.nextCheckpoint++;
        }
        if (cps && s.nextCheckpoint < cps.length) n = Math.min(n, cps[s.nextCheckpoint] - s.fed);
        budget -= n;
        items.push({ tokens: s.job.tokens.slice(s.fed, s.fed + n), state: s.job.state });
        owners.push(s);
      }
      const t0 = performance.now();
      let logits: Float32Array[];
      try {
        logits = await this.model.forwardBatch(items);
      } catch (e) {
        for (const s of owners) {
          this.#running.splice(this.#running.indexOf(s), 1);
          this.#end(s, "error", e);
        }
        continue;
      }
      this.#steps++;
      this.#lastItems = items.length;
      this.#lastMs = performance.now() - t0;
      for (let i = 0; i < owners.length; i++) {
        const s = owners[i];
        if (s.cancelled) continue; // dropped by the next tidy
        if (s.fed < s.job.tokens.length) {
          s.fed += items[i].tokens.length;
          this.#prompt += items[i].tokens.length;
          if (s.job.checkpoints?.includes(s.fed)) {
            guard(s, () => s.job.onCheckpoint?.(s.fed, s.job.state));
          }
          if (s.fed < s.job.tokens.length) continue;
          if (s.job.maxTokens === 0) {
            s.ending = "length";
            continue;
          }
        } else {
          s.pending = [];
          if (s.finalFeed) {
            s.finalFeed = false; // fed: the next tidy ends it
            continue;
          }
          if (s.ending) continue;
        }
        try {
          this.#sample(s, logits[i]);
        } catch (e) {
          // a constraint that refuses every token, or a sampler fed no candidate
          this.#running.splice(this.#running.indexOf(s), 1);
          this.#end(s, "error", e);
        }
      }
    }
  }

  #sample(s: Seq, logits: Float32Array): void {
    const job = s.job;
    const limit = job.vocabLimit ?? logits.length;
    for (let i = limit; i < logits.length; i++) logits[i] = -Infinity;
    const c = job.constraint;
    // log probabilities are the model's own, before bias, penalties, temperature and mask
    const lp = job.logprobs !== undefined ? tokenLogprob(logits, job.logprobs) : undefined;
    const forced = c?.forced() ?? [];
    let token: number;
    if (forced.length > 0) token = forced[0];
    else {
      c?.mask(logits);
      token = job.sampler.sample(logits);
    }
    if (token === job.endToken && (!c || c.complete) && forced.length === 0) {
      s.ending = "end";
      return;
    }
    this.#emit(s, token, lp?.(token));
    // without log probabilities, a forced run is fed at once (one step for the whole run)
    if (lp || !c) return;
    for (const t of c.forced()) {
      if (s.ending || s.cancelled) return;
      this.#emit(s, t, undefined);
    }
  }

  /** Records a generated token: constraint, penalties, counters, the caller; ends if due. */
  #emit(s: Seq, token: number, logprob: TokenLogprob | undefined): void {
    const job = s.job;
    job.constraint?.accept(token);
    job.sampler.accept(token);
    s.generated++;
    this.#generated++;
    s.pending.push(token);
    s.firstTokenMs ??= performance.now() - s.submitted;
    guard(s, () => job.onToken?.(token, logprob));
    if (s.ending || s.cancelled) return; // stop() called from onToken (it set finalFeed)
    if (job.constraint?.finished) {
      s.ending = "stop";
      s.finalFeed = job.feedLast === true;
    } else if (s.generated >= job.maxTokens) {
      s.ending = "length";
      s.finalFeed = job.feedLast === true;
    }
  }
}
