/**
 * Log probabilities of generated tokens, as the OpenAI APIs report them.
 *
 * The values are the model's own: a float64 log-softmax of the logits the model returned for
 * that position, over the tokenizer's vocabulary, before anything the sampler or a grammar does
 * (logit bias, penalties, temperature, top-p/top-k, the constraint's mask). That is what OpenAI
 * returns (its log probabilities do not move with `temperature` or `top_p`) and what vLLM reports
 * by default (`raw_logprobs`); a token a grammar forced still gets the probability the model gave
 * it, which is how unlikely the constrained output was.
 * @module
 */

import type { Tokenizer } from "../tokenizer/mod.ts";
import { HttpError } from "./_http.ts";

/**
 * One generated token's log probability and the most likely alternatives at its position.
 * @example
 * ```ts
 * const lp: TokenLogprob = { token: 72, logprob: -0.3, top: [{ token: 72, logprob: -0.3 }] };
 * ```
 */
export interface TokenLogprob {
  /** The generated token's id. */
  readonly token: number;
  /** Its natural-log probability under the model (≤ 0). */
  readonly logprob: number;
  /** The most likely tokens, most likely first (ties: lower id first); as many as asked. */
  readonly top: readonly { readonly token: number; readonly logprob: number }[];
}

/**
 * Most alternatives a request may ask for (OpenAI's limit).
 * @example
 * ```ts
 * const top = 5; // a request's top_logprobs
 * if (top > MAX_TOP_LOGPROBS) throw new RangeError("top_logprobs ≤ 20");
 * ```
 */
export const MAX_TOP_LOGPROBS = 20;

/**
 * The log-softmax of `logits` in float64 (−Infinity entries stay −Infinity), and a function
 * giving any token's entry with the `topN` most likely tokens.
 * @example
 * ```ts
 * declare const logits: Float32Array, sampledToken: number;
 * const at = tokenLogprob(logits, 5);
 * const { logprob, top } = at(sampledToken);
 * ```
 */
export function tokenLogprob(
  logits: Float32Array,
  topN: number,
): (token: number) => TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > -Infinity) sum += Math.exp(logits[i] - max);
  }
  const lse = max + Math.log(sum);
  // the topN largest, kept sorted (descending value, ascending id) by insertion
  const ids: number[] = [];
  if (topN > 0) {
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i];
      if (!(v > -Infinity)) continue;
      if (ids.length === topN && v <= logits[ids[topN - 1]]) continue;
      let j = ids.length < topN ? ids.length : topN - 1;
      while (j > 0 && logits[ids[j - 1]] < v) {
        if (j < topN) ids[j] = ids[j - 1];
        j--;
      }
      ids[j] = i;
    }
  }
  const top = ids.map((t) => ({ token: t, logprob: logits[t] - lse }));
  return (token) => ({ token, logprob: logits[token] - lse, top });
}

/**
 * A token's text and UTF-8 bytes as the APIs show them (a token that is part of a multi-byte
 * character shows U+FFFD in `token`, its bytes in `bytes`).
 * @example
 * ```ts
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokenizer: Tokenizer;
 * tokenText(tokenizer, 72); // { token: "H", bytes: [72] }
 * ```
 */
export function tokenText(tokenizer: Tokenizer, id: number): { token: string; bytes: number[] } {
  const bytes = tokenizer.decodeBytes([id]);
  return { token: new TextDecoder().decode(bytes), bytes: Array.from(bytes) };
}

/**
 * Chat completions' `logprobs.content[i]` entry of a token (also the Responses API's
 * `logprobs` entries, which have the same shape).
 * @example
 * ```ts
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokenizer: Tokenizer, lp: TokenLogprob;
 * const entry = chatLogprob(tokenizer, lp); // { token, logprob, bytes, top_logprobs }
 * ```
 */
export function chatLogprob(tokenizer: Tokenizer, lp: TokenLogprob): Record<string, unknown> {
  return {
    ...tokenText(tokenizer, lp.token),
    logprob: lp.logprob,
    top_logprobs: lp.top.map((t) => ({ ...tokenText(tokenizer, t.token), logprob: t.logprob })),
  };
}

/**
 * Legacy completions' `logprobs` object over some tokens (`tokens`, `token_logprobs`,
 * `top_logprobs` as token → log probability maps, `text_offset`).
 * @example
 * ```ts
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokenizer: Tokenizer, entries: TokenLogprob[];
 * const lp = completionLogprobs(tokenizer, entries, 0);
 * ```
 */
export function completionLogprobs(
  tokenizer: Tokenizer,
  entries: readonly TokenLogprob[],
  offset: number,
): Record<string, unknown> {
  const tokens: string[] = [];
  const offsets: number[] = [];
  let at = offset;
  for (const e of entries) {
    const t = tokenText(tokenizer, e.token).token;
    tokens.push(t);
    offsets.push(at);
    at += t.length;
  }
  return {
    tokens,
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) =>
      Object.fromEntries(e.top.map((t) => [tokenText(tokenizer, t.token).token, t.logprob]))
    ),
    text_offset: offsets,
  };
}

/**
 * Chat completions' `logprobs` (boolean) and `top_logprobs` (0–20, needs `logprobs`): how many
 * alternatives to report, undefined when none are asked. Legacy completions' `logprobs` is the
 * number itself (0–20; OpenAI allows 5, llama.cpp and vLLM more).
 * @example
 * ```ts
 * parseLogprobs({ logprobs: true, top_logprobs: 3 }, true); // 3
 * ```
 */
export function parseLogprobs(body: Record<string, unknown>, chat: boolean): number | undefined {
  const bad = (message: string, param: string) =>
    new HttpError(400, message, "invalid_request_error", param);
  const lp = body.logprobs ?? undefined;
  const top = body.top_logprobs ?? undefined;
  const inRange = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_TOP_LOGPROBS;
  if (!chat) {
    if (top !== undefined) throw bad("use 'logprobs' (a number) on completions", "top_logprobs");
    if (lp === undefined || lp === false) return undefined;
    if (!inRange(lp)) {
      throw bad(`'logprobs' must be an integer from 0 to ${MAX_TOP_LOGPROBS}`, "logprobs");
    }
    return lp as number;
  }
  if (lp !== undefined && typeof lp !== "boolean") {
    throw bad("'logprobs' must be a boolean", "logprobs");
  }
  if (top !== undefined) {
    if (!inRange(top)) {
      throw bad(`'top_logprobs' must be an integer from 0 to ${MAX_TOP_LOGPROBS}`, "top_logprobs");
    }
    if (lp !== true) throw bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  }
  return lp === true ? (top as number | undefined) ?? 0 : undefined;
}
