/**
 * `Pipeline`: the official `rwkv` package's `PIPELINE` (ChatRWKV `rwkv_pip_package/src/rwkv/
 * utils.py`) for those who know it: `encode`, `decode`, `sampleLogits` and `generate` with the
 * `PIPELINE_ARGS` names and defaults, and the same arithmetic:
 *
 * - the context is fed in chunks of `chunk_len` tokens, then one token per step;
 * - banned tokens (`token_ban`) get −∞; every token seen gets
 *   `logit −= alpha_presence + occurrence × alpha_frequency`;
 * - sampling (`sample_logits`): softmax, the nucleus cut-off is the probability at which the
 *   descending cumulative sum first reaches `top_p` (every token below it dropped, ties kept),
 *   then all but the `top_k` most likely dropped, then `probs ** (1 / temperature)`,
 *   renormalised, one draw; `temperature` 0 means `top_p` 0 (the most likely token, ties drawn);
 * - a sampled token in `token_stop` ends generation (it is not emitted);
 * - after each token every occurrence decays by `alpha_decay`, then the token's grows by 1
 *   (by 0 for a token that decodes to a space, a tab or digits: those are never penalised
 *   by frequency, only by presence);
 * - text is emitted whenever the tokens since the last emission decode to valid UTF-8.
 *
 * Two additions: `seed` (a seeded draw instead of NumPy's global one), and logits of ids past
 * the tokenizer's vocabulary are never sampled. As in the official code, token 0 does not end
 * generation unless `token_stop` holds it.
 *
 * @example
 * ```ts
 * import { Pipeline } from "./pipeline.ts";
 * import { loadModel } from "./load.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const pipeline = await Pipeline.load(model, "bytes"); // or "rwkv_vocab_v20230424.txt"
 * const text = await pipeline.generate("\nIn a shocking finding,", 30, {
 *   temperature: 1.0,
 *   top_p: 0.7,
 *   alpha_frequency: 0.25,
 *   alpha_presence: 0.25,
 *   token_ban: [0],
 *   token_stop: [],
 *   chunk_len: 256,
 *   seed: 1,
 * }, (piece) => Deno.stdout.writeSync(new TextEncoder().encode(piece)));
 * console.log(pipeline.decode(pipeline.encode(text)) === text); // true
 * await model.dispose();
 * ```
 * @module
 */

import { UsageError } from "./errors.ts";
import type { State } from "./model/state.ts";
import { makeRng } from "./sample.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer/mod.ts";

/**
 * The official `PIPELINE_ARGS`, same names and meaning (plus `seed`).
 * @example
 * ```ts
 * import { PIPELINE_ARGS, type PipelineArgs } from "./pipeline.ts";
 * const args: PipelineArgs = { ...PIPELINE_ARGS, top_p: 0.5, token_ban: [0] };
 * ```
 */
export interface PipelineArgs {
  /** Sampling temperature, applied as `probs ** (1 / T)` after the filters (0: greedy). */
  temperature: number;
  /** Nucleus: keep the most likely tokens until their probability sums to `top_p`. */
  top_p: number;
  /** Keep only the `top_k` most likely tokens (0: off). */
  top_k: number;
  /** Frequency penalty (as in GPT-3), per (decayed) occurrence. */
  alpha_frequency: number;
  /** Presence penalty (as in GPT-3), once a token has occurred. */
  alpha_presence: number;
  /** Every step, each occurrence count is multiplied by this. */
  alpha_decay: number;
  /** Tokens never generated. */
  token_ban: readonly number[];
  /** Generation stops when one of these is sampled. */
  token_stop: readonly number[];
  /** Context tokens per model call. */
  chunk_len: number;
  /** Seed of the draws (default: random). Not in the official arguments. */
  seed?: number;
}

/**
 * The official defaults: `PIPELINE_ARGS()` of the `rwkv` package.
 * @example
 * ```ts
 * import { PIPELINE_ARGS } from "./pipeline.ts";
 * console.log(PIPELINE_ARGS.top_p, PIPELINE_ARGS.alpha_decay, PIPELINE_ARGS.chunk_len); // 0.85 0.996 256
 * ```
 */
export const PIPELINE_ARGS: Readonly<PipelineArgs> = Object.freeze({
  temperature: 1.0,
  top_p: 0.85,
  top_k: 0,
  alpha_frequency: 0.2,
  alpha_presence: 0.2,
  alpha_decay: 0.996,
  token_ban: [],
  token_stop: [],
  chunk_len: 256,
});

/**
 * What a {@link Pipeline} needs of a model: the official `forward(tokens, state)` (state
 * updated in place here) and a fresh state. A `Model` is one.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const m: PipelineModel = await loadModel("model.pth");
 * ```
 */
export interface PipelineModel {
  /** Runs `tokens` from `state` (updated in place); returns the logits after the last one. */
  forward(tokens: ArrayLike<number>, state: State): Promise<Float32Array>;
  /** A new initial state. */
  createState(): State;
}

/**
 * The official `PIPELINE`: a model with its tokenizer, and the official sampling and
 * generation loop (see the module documentation for the exact arithmetic).
 * @example
 * ```ts
 * import { Pipeline } from "./pipeline.ts";
 * import { loadModel } from "./load.ts";
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-4v0.pth", { threads: 2 });
 * const pipeline = await Pipeline.load(model, "bytes");
 * console.log(pipeline.encode("Hi")); // [72, 105]
 * await model.dispose();
 * ```
 */
export class Pipeline {
  /** The model it runs. */
  readonly model: PipelineModel;
  /** Its tokenizer. */
  readonly tokenizer: Tokenizer;

  /** A pipeline over `model` with `tokenizer`. */
  constructor(model: PipelineModel, tokenizer: Tokenizer) {
    this.model = model;
    this.tokenizer = tokenizer;
  }

  /**
   * As the official `PIPELINE(model, WORD_NAME)`: `word` is a tokenizer file (a World
   * vocabulary such as `rwkv_vocab_v20230424.txt`, or a Hugging Face `tokenizer.json` such as
   * `20B_tokenizer.json`) or `"bytes"`.
   */
  static async load(model: PipelineModel, word: string): Promise<Pipeline> {
    return new Pipeline(model, await loadTokenizer(word));
  }

  /** Text → token ids. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Token ids → text (invalid UTF-8 becomes U+FFFD, as Python's decode with replace). */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids);
  }

  /**
   * The distribution `sample_logits` draws from (the official arithmetic, see the module
   * documentation): a new array of probabilities summing to 1.
   */
  probabilities(
    logits: ArrayLike<number>,
    temperature = PIPELINE_ARGS.temperature,
    top_p = PIPELINE_ARGS.top_p,
    top_k = PIPELINE_ARGS.top_k,
  ): Float64Array {
    if (!(temperature >= 0) || !(top_p >= 0) || !(top_k >= 0)) {
      throw new UsageError(
        `temperature, top_p and top_k must be ≥ 0 (got ${temperature}, ${top_p}, ${top_k})`,
      );
    }
    if (temperature === 0) {
      temperature = 1;
      top_p = 0;
    }
    const n = logits.length;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    const probs = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i] = Math.exp(logits[i] - max);
    for (let i = 0; i < n; i++) probs[i] /= sum;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
    let cum = 0, cutoff = probs[order[0]];
    for (const i of order) {
      cum += probs[i];
      if (cum >= top_p) {
        cutoff = probs[i];
        break;
      }
    }
    for (let i = 0; i < n; i++) if (probs[i] < cutoff) probs[i] = 0;
    const k = Math.floor(top_k);
    if (k > 0 && k < n) { for (const i of order.slice(k)) probs[i] = 0; }
    if (temperature !== 1) { for (let i = 0; i < n; i++) probs[i] = probs[i] ** (1 / temperature); }
    let total = 0;
    for (let i = 0; i < n; i++) total += probs[i];
    for (let i = 0; i < n; i++) probs[i] /= total;
    return probs;
  }

  /**
   * The official `sample_logits(logits, temperature, top_p, top_k)`: one draw from
   * {@link Pipeline.probabilities}, with `rng` (uniform in [0, 1)) or `Math.random`.
   */
  sampleLogits(
    logits: ArrayLike<number>,
    temperature = PIPELINE_ARGS.temperature,
    top_p = PIPELINE_ARGS.top_p,
    top_k = PIPELINE_ARGS.top_k,
    rng: () => number = Math.random,
  ): number {
    const p = this.probabilities(logits, temperature, top_p, top_k);
    const u = rng();
    let cum = 0, last = 0;
    for (let i = 0; i < p.length; i++) {
      if (p[i] === 0) continue;
      last = i;
      cum += p[i];
      if (u < cum) return i;
    }
    return last;
  }

  /**
   * The official `generate(ctx, token_count, args, callback, state)`: up to `tokenCount`
   * tokens after `ctx`, `callback` called with each piece of text as it becomes valid UTF-8;
   * returns the whole text. `state` (default: a new one) is updated in place, so a
   * conversation can go on from it.
   */
  async generate(
    ctx: string,
    tokenCount = 100,
    args: Partial<PipelineArgs> = {},
    callback?: (piece: string) => void,
    state: State = this.model.createState(),
  ): Promise<string> {
    const a: PipelineArgs = { ...PIPELINE_ARGS, ...args };
    if (!Number.isInteger(a.chunk_len) || a.chunk_len < 1) {
      throw new UsageError(`chunk_len must be a whole number ≥ 1, not ${a.chunk_len}`);
    }
    const rng = makeRng(a.seed ?? Math.floor(Math.random() * 2 ** 32));
    const vocab = this.tokenizer.vocabSize;
    const occurrence = new Map<number, number>();
    const allTokens: number[] = [];
    let outLast = 0, outStr = "", token = 0;
    for (let i = 0; i < tokenCount; i++) {
      let tokens = i === 0 ? this.encode(ctx) : [token];
      let out: Float32Array = new Float32Array(0);
      while (tokens.length > 0) {
        out = (await this.model.forward(tokens.slice(0, a.chunk_len), state)).slice();
        tokens = tokens.slice(a.chunk_len);
      }
      for (let n = vocab; n < out.length; n++) out[n] = -Infinity;
      for (const n of a.token_ban) out[n] = -Infinity;
      for (const [n, occ] of occurrence) out[n] -= a.alpha_presence + occ * a.alpha_frequency;
      token = this.sampleLogits(out, a.temperature, a.top_p, a.top_k, rng);
      if (a.token_stop.includes(token)) break;
      allTokens.push(token);
      for (const [n, occ] of occurrence) occurrence.set(n, occ * a.alpha_decay);
      const www = " \t0123456789".includes(this.decode([token])) ? 0 : 1;
      occurrence.set(token, (occurrence.get(token) ?? 0) + www);
      const tmp = this.decode(allTokens.slice(outLast));
      if (!tmp.includes("\ufffd")) {
        callback?.(tmp);
        outStr += tmp;
        outLast = i + 1;
      }
    }
    return outStr;
  }
}
