/**
 * The prefix cache of chat completions: the state after each conversation prefix a client may
 * resend (token-exact, keyed by a hash of its tokens and of the state a fresh conversation starts
 * from), stored in the state bank; a request resumes from the longest one already seen.
 * @module
 */

import { Sampler } from "../sample.ts";
import type { State } from "../model/state.ts";
import type { Core, RunResult } from "./_core.ts";
import { tokensHash } from "./states.ts";

/**
 * The prefix cache over a server's state bank.
 * @example
 * ```ts
 * import type { Core } from "./_core.ts";
 * declare const core: Core, tokens: number[], boundaries: number[];
 * const prefixes = new PrefixCache(core);
 * const hit = await prefixes.lookup(tokens, boundaries); // { state, cached } or undefined
 * ```
 */
export class PrefixCache {
  readonly #core: Core;
  #initTagP: Promise<string> | undefined;
  readonly #suffixTokens: number[];

  constructor(core: Core) {
    this.#core = core;
    // What follows a reply when a client sends it back (World: "\n\n"): fed after a reply that
    // did not end at a stop string, so the cached state lines up with the resent history.
    const [, replySuffix = ""] = core.template.assistant.split("{content}");
    this.#suffixTokens = core.tokenizer.encode(replySuffix);
  }

  /** Prefix-cache keys depend on the state a fresh conversation starts from. */
  #initTag(): Promise<string> {
    const model = this.#core.model;
    return this.#initTagP ??= model.initialState
      ? tokensHash(Array.from(new Int32Array(model.initialState.data.buffer.slice(0))))
        .then((h) => h.slice(0, 16))
      : Promise.resolve("zero");
  }

  /** The longest cached prefix of `tokens` ending at one of `boundaries`. */
  async lookup(
    tokens: number[],
    boundaries: number[],
  ): Promise<{ state: State; cached: number } | undefined> {
    const b = await this.#core.bank();
    const tag = await this.#initTag();
    for (let i = boundaries.length - 1; i >= 0; i--) {
      const n = boundaries[i];
      if (n >= tokens.length) continue;
      const key = `prefix:${tag}:${await tokensHash(tokens.slice(0, n))}`;
      try {
        const got = await b.load(key);
        if (got) return { state: got.state, cached: n };
      } catch {
        // an unreachable store or a foreign state is only a cache miss here
        return undefined;
      }
    }
    return undefined;
  }

  /** Stores `state` as the state after `tokens` (a failure only loses the cache entry). */
  async save(tokens: readonly number[], state: State): Promise<void> {
    const b = await this.#core.bank();
    const key = `prefix:${await this.#initTag()}:${await tokensHash(tokens)}`;
    await b.save(key, state, { tokens: tokens.length }).catch(() => {});
  }

  /** Caches the state after a reply under the tokens a client resending it will send. */
  async cacheReply(
    prompt: readonly number[],
    r: RunResult,
    state: State,
    saves: Promise<void>[],
  ): Promise<void> {
    const key = [...prompt, ...r.tokens];
    const suffixTokens = this.#suffixTokens;
    if (r.reason === "stop" || suffixTokens.length === 0) {
      saves.push(this.save(key, state));
      return;
    }
    try {
      const seq = this.#core.scheduler.submit({
        tokens: suffixTokens,
        state,
        sampler: new Sampler({ seed: 0 }),
        maxTokens: 0,
      });
      if ((await seq.done).reason === "length") {
        saves.push(this.save([...key, ...suffixTokens], state));
      }
    } catch {
      // the line is full: this reply is just not cached
    }
  }
}
