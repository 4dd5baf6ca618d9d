/**
 * Admission control for the server: at most `concurrency` generations run, at most `queue`
 * wait; a waiter whose client leaves is dropped from the line. Plus a mutex that serialises
 * forward passes so concurrent generations interleave token by token on one model.
 * @module
 */

import { type Model, newModel } from "../model/model.ts";

/**
 * The queue is full: the caller should answer 429.
 * @example
 * ```ts ignore
 * try { await slots.acquire(signal); } catch (e) { if (e instanceof QueueFullError) return tooMany(); }
 * ```
 */
export class QueueFullError extends Error {
  constructor() {
    super("the server is busy: the request queue is full, retry later");
    this.name = "QueueFullError";
  }
}

/**
 * Slots for running requests with a bounded waiting line.
 * @example
 * ```ts ignore
 * const slots = new Slots(1, 8);
 * const release = await slots.acquire(request.signal);
 * try { ... } finally { release(); }
 * ```
 */
export class Slots {
  readonly concurrency: number;
  readonly queueLength: number;
  #active = 0;
  #waiting: { grant: () => void; fail: (e: unknown) => void }[] = [];

  constructor(concurrency: number, queueLength: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a whole number ≥ 1, not ${concurrency}`);
    }
    if (!Number.isInteger(queueLength) || queueLength < 0) {
      throw new RangeError(`queue must be a whole number ≥ 0, not ${queueLength}`);
    }
    this.concurrency = concurrency;
    this.queueLength = queueLength;
  }

  /** Requests running now. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Waits for a slot; resolves to its release function (call it once). Rejects with
   * {@link QueueFullError} at once when the line is full, or with the signal's reason when
   * the caller gives up while waiting.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next.grant();
      else this.#active--;
    };
    if (this.#active < this.concurrency) {
      this.#active++;
      return Promise.resolve(release);
    }
    if (this.#waiting.length >= this.queueLength) return Promise.reject(new QueueFullError());
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        fail: reject,
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(entry);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }
}

/**
 * A view of `model` whose forward passes run one at a time (in call order), so several
 * generations can share it safely. Disposing the view does not dispose the model.
 * @example
 * ```ts ignore
 * const shared = serialized(model);
 * await Promise.all([shared.forward([1], a), shared.forward([2], b)]); // one after the other
 * ```
 */
export function serialized(model: Model): Model {
  // A model already runs its calls one at a time, in call order: the view only keeps its
  // dispose from ending the model.
  const m = newModel(
    {
      name: model.info.engine,
      run: (items, every) => model.forwardBatch(items, { every }),
      dispose: () => Promise.resolve(),
    },
    model.spec,
    model.info,
  );
  m.initialState = model.initialState;
  return m;
}
