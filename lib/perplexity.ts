/**
 * Perplexity of a model on a text: windows of `ctx` tokens, each from a fresh state, run in
 * prompt mode (several windows at once through `model.forwardBatch` with `batch`); every token
 * after the first of a window is scored.
 * @module
 */

import { UsageError } from "./errors.ts";
import type { Model } from "./model/model.ts";
import type { Tokenizer } from "./tokenizer/mod.ts";

/**
 * Options of {@link perplexity}.
 * @example
 * ```ts
 * import type { PerplexityOptions } from "./perplexity.ts";
 * const opts: PerplexityOptions = { ctx: 256, batch: 4, onProgress: (d, t) => console.log(d, t) };
 * ```
 */
export interface PerplexityOptions {
  /** Tokens per window (default 512). */
  ctx?: number;
  /**
   * Windows evaluated together in one `forwardBatch` call (default 1). The result does not
   * depend on it (each window runs from its own fresh state); a batching engine shares each
   * weight read across the windows.
   */
  batch?: number;
  /** Tokens scored so far of the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * What {@link perplexity} measured.
 * @example
 * ```ts
 * import type { PerplexityResult } from "./perplexity.ts";
 * const show = (r: PerplexityResult) => `${r.perplexity.toFixed(3)} (${r.bitsPerByte} bits/byte)`;
 * ```
 */
export interface PerplexityResult {
  /** exp(mean negative log-likelihood per scored token). */
  perplexity: number;
  /** Mean negative log-likelihood per scored token, in nats. */
  meanNll: number;
  /** Total NLL in bits divided by the UTF-8 bytes of the scored tokens. */
  bitsPerByte: number;
  /** Tokens scored. */
  scoredTokens: number;
  /** Tokens processed per second. */
  tokensPerSecond: number;
}

/**
 * Measures perplexity and bits per byte.
 * @example
 * ```ts
 * import { perplexity } from "./perplexity.ts";
 * import { loadModel } from "./load.ts";
 * import { loadTokenizer } from "./tokenizer/mod.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const text = (await Deno.readTextFile("bench/data/eval.txt")).slice(0, 1000);
 * const r = await perplexity(model, await loadTokenizer("bytes"), text, { ctx: 256, batch: 4 });
 * console.log(r.perplexity.toFixed(3), r.bitsPerByte.toFixed(4));
 * await model.dispose();
 * ```
 */
export async function perplexity(
  model: Model,
  tokenizer: Tokenizer,
  text: string,
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const ctx = options.ctx ?? 512;
  if (!Number.isInteger(ctx) || ctx < 2) throw new UsageError("ctx must be a whole number ≥ 2");
  const batch = options.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new UsageError("batch must be a whole number ≥ 1");
  }
  const ids = tokenizer.encode(text);
  if (ids.length < 2) throw new UsageError("the text needs at least two tokens");
  const V = model.info.vocab;
  // windows: tokens [w, w + ctx] (ctx + 1 tokens: ctx inputs, each scored on the next)
  const windows: number[][] = [];
  for (let w = 0; w < ids.length - 1; w += ctx) {
    windows.push(ids.slice(w, Math.min(ids.length, w + ctx + 1)));
  }
  let nll = 0, scored = 0, bytes = 0, done = 0;
  const t0 = performance.now();
  for (let b = 0; b < windows.length; b += batch) {
    const group = windows.slice(b, b + batch);
    const all = await model.forwardBatch(
      group.map((win) => ({ tokens: win.slice(0, -1), state: model.createState() })),
      { every: true },
    );
    for (let k = 0; k < group.length; k++) {
      const win = group[k], logits = all[k];
      for (let t = 0; t + 1 < win.length; t++) {
        const o = t * V;
        let max = -Infinity;
        for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
        let sum = 0;
        for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
        nll += Math.log(sum) + max - logits[o + win[t + 1]];
        scored++;
        bytes += tokenizer.decodeBytes([win[t + 1]]).length;
      }
      done += win.length - 1;
    }
    options.onProgress?.(done, ids.length - 1);
  }
  const secs = (performance.now() - t0) / 1000;
  const meanNll = nll / scored;
  return {
    perplexity: Math.exp(meanNll),
    meanNll,
    bitsPerByte: nll / Math.LN2 / Math.max(1, bytes),
    scoredTokens: scored,
    tokensPerSecond: scored / Math.max(1e-9, secs),
  };
}
