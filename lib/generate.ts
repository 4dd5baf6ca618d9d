/**
 * Text generation as an async iterator of text pieces.
 * @module
 */

import { UsageError } from "./errors.ts";
import type { Model } from "./model/model.ts";
import type { State } from "./model/state.ts";
import { Sampler, type SamplerOptions } from "./sample.ts";
import type { Tokenizer } from "./tokenizer/mod.ts";

/**
 * Options of {@link generate}: sampling plus limits.
 * @example
 * ```ts ignore
 * const opts: GenerateOptions = { maxTokens: 100, temperature: 0.8, stop: ["\n\n"], seed: 1 };
 * ```
 */
export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate (default 200). */
  maxTokens?: number;
  /** Stop as soon as the text contains one of these (the stop string is not emitted). */
  stop?: readonly string[];
  /** Stops generation early. */
  signal?: AbortSignal;
  /**
   * State to continue from; it is updated in place (so a chat can go on). Default: a new
   * zeroed state.
   */
  state?: State;
  /** Prompt processing progress, in tokens. */
  onPromptProgress?: (done: number, total: number) => void;
  /** Called once at the end with the statistics. */
  onStats?: (stats: GenerateStats) => void;
}

/**
 * What a generation did.
 * @example
 * ```ts ignore
 * const it = generate(model, tokenizer, "Hi");
 * let r = await it.next();
 * while (!r.done) r = await it.next();
 * console.log(r.value.tokensPerSecond);
 * ```
 */
export interface GenerateStats {
  /** Tokens of the prompt run through the model. */
  promptTokens: number;
  /** Tokens generated. */
  generatedTokens: number;
  /** Seconds spent on the prompt. */
  promptSeconds: number;
  /** Seconds spent generating. */
  generateSeconds: number;
  /** Prompt tokens per second. */
  promptTokensPerSecond: number;
  /** Generated tokens per second. */
  tokensPerSecond: number;
  /** Why it ended. */
  stopReason: "length" | "stop" | "end-of-text" | "abort";
}

const PROMPT_CHUNK = 128;

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldBack(text: string, stops: readonly string[]): number {
  let keep = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
      if (text.endsWith(s.slice(0, n))) {
        keep = n;
        break;
      }
    }
  }
  return keep;
}

/**
 * Generates text after `prompt`, streaming pieces as they are decoded (never half a UTF-8
 * character). The iterator's return value is the {@link GenerateStats}.
 * @example
 * ```ts ignore
 * for await (const piece of generate(model, tokenizer, "Hello", { maxTokens: 50 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * ```
 */
export async function* generate(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<string, GenerateStats> {
  const ids = typeof prompt === "string" ? tokenizer.encode(prompt) : [...prompt];
  if (ids.length === 0) throw new UsageError("the prompt is empty: give at least one token");
  if (tokenizer.vocabSize > model.info.vocab) {
    throw new UsageError(
      `tokenizer has ${tokenizer.vocabSize} tokens, the model only ${model.info.vocab}`,
    );
  }
  const maxTokens = options.maxTokens ?? 200;
  const stops = (options.stop ?? []).filter((s) => s.length > 0);
  const state = options.state ?? model.createState();
  const sampler = new Sampler(options);
  const signal = options.signal;

  // Prompt, in chunks so progress can be shown and an abort is honoured.
  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  for (let i = 0; i < ids.length; i += PROMPT_CHUNK) {
    if (signal?.aborted) break;
    logits = await model.forward(ids.slice(i, i + PROMPT_CHUNK), state);
    options.onPromptProgress?.(Math.min(ids.length, i + PROMPT_CHUNK), ids.length);
  }
  for (const id of ids) sampler.accept(id);
  const t1 = performance.now();

  const decoder = tokenizer.createDecoder();
  let pending = ""; // decoded text not yet emitted (may start a stop string)
  let generated = 0;
  let reason: GenerateStats["stopReason"] = "length";
  while (generated < maxTokens) {
    if (signal?.aborted) {
      reason = "abort";
      break;
    }
    // A World vocabulary has fewer ids than the model's 65536 logits: never pick one it lacks.
    for (let i = tokenizer.vocabSize; i < logits.length; i++) logits[i] = -Infinity;
    const token = sampler.sample(logits);
    if (token === 0 && tokenizer.kind !== "bytes") {
      reason = "end-of-text";
      break;
    }
    sampler.accept(token);
    generated++;
    pending += decoder.push(token);
    // Feed every kept token so the state always matches the text (a chat can go on).
    logits = await model.forward([token], state);
    if (stops.length) {
      const hit = stops.map((s) => pending.indexOf(s)).filter((i) => i >= 0);
      if (hit.length) {
        const cut = Math.min(...hit);
        if (cut > 0) yield pending.slice(0, cut);
        pending = "";
        reason = "stop";
        break;
      }
      const keep = heldBack(pending, stops);
      if (pending.length > keep) {
        yield pending.slice(0, pending.length - keep);
        pending = pending.slice(pending.length - keep);
      }
    } else if (pending) {
      yield pending;
      pending = "";
    }
  }
  if (reason !== "stop") {
    pending += decoder.flush();
    if (pending) yield pending;
  }
  const t2 = performance.now();
  const stats: GenerateStats = {
    promptTokens: ids.length,
    generatedTokens: generated,
    promptSeconds: (t1 - t0) / 1000,
    generateSeconds: (t2 - t1) / 1000,
    promptTokensPerSecond: ids.length / Math.max(1e-9, (t1 - t0) / 1000),
    tokensPerSecond: generated / Math.max(1e-9, (t2 - t1) / 1000),
    stopReason: reason,
  };
  options.onStats?.(stats);
  return stats;
}
