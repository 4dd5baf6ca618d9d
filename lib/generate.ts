/**
 * Text generation: {@link generate} streams one sequence, {@link generateBatch} runs many
 * sequences together (one `model.forwardBatch` call per step, each sequence with its own state,
 * sampler and seed). Both share one decoding loop: vocabulary masking, banned and stop tokens,
 * the end-of-text rule, stop strings held back until they are ruled out.
 * @module
 */

import { UsageError } from "./errors.ts";
import { Constraint } from "./grammar/constraint.ts";
import { compileGbnf, Grammar } from "./grammar/grammar.ts";
import { compileJsonSchema } from "./grammar/mod.ts";
import type { Model } from "./model/model.ts";
import type { State } from "./model/state.ts";
import { Sampler, type SamplerOptions } from "./sample.ts";
import type { Tokenizer } from "./tokenizer/mod.ts";

/**
 * Options of {@link generate}: sampling plus limits.
 * @example
 * ```ts
 * import type { GenerateOptions } from "./generate.ts";
 * const opts: GenerateOptions = { maxTokens: 100, temperature: 0.8, stop: ["\n\n"], seed: 1 };
 * ```
 */
export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate (default 200). */
  maxTokens?: number;
  /** Stop as soon as the text contains one of these (the stop string is not emitted). */
  stop?: readonly string[];
  /** Token ids that end generation when sampled (not emitted, not fed to the model). */
  stopTokens?: readonly number[];
  /** Token ids never sampled. */
  banTokens?: readonly number[];
  /**
   * End when the model samples token 0 (RWKV's end of text). Default: true for World and
   * Hugging Face vocabularies, false for the byte-level one (where 0 is the NUL byte).
   */
  stopOnEndOfText?: boolean;
  /** Prompt tokens per model call (default 256): progress and abort are checked between them. */
  chunkLen?: number;
  /** Stops generation early. */
  signal?: AbortSignal;
  /**
   * Constrains the output to JSON that this JSON Schema accepts (see `compileJsonSchema` in
   * `./grammar`: unsupported keywords throw a `GrammarError`). The output ends, with stop
   * reason "end-of-text", once the value is whole (at the end token where more could follow).
   */
  jsonSchema?: unknown;
  /**
   * Constrains the output to a grammar: GBNF text (llama.cpp's format, start rule `root`) or
   * a compiled `Grammar` from `./grammar`. Not with `jsonSchema`.
   */
  grammar?: string | Grammar;
  /**
   * State to continue from; it is updated in place (so a chat can go on). Default: a new
   * zeroed state.
   */
  state?: State;
  /** Prompt processing progress, in tokens. */
  onPromptProgress?: (done: number, total: number) => void;
  /** The logits after the whole prompt, before anything is sampled (not called if aborted). */
  onPromptLogits?: (logits: Float32Array) => void;
  /** Every generated token, once it has been fed to the model. */
  onToken?: (token: number) => void;
  /** Called once at the end with the statistics. */
  onStats?: (stats: GenerateStats) => void;
}

/**
 * What a generation did.
 * @example
 * ```ts
 * import type { Model } from "./model/model.ts";
 * import type { Tokenizer } from "./tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
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
  /**
   * Why it ended: "end-of-text" when the model drew the end token or a grammar's output is
   * finished (nothing may follow), "stop" on a stop string or stop token.
   */
  stopReason: "length" | "stop" | "end-of-text" | "abort";
  /**
   * With `jsonSchema` or `grammar`: whether the output is a whole match of it. False when it
   * was cut short (by `maxTokens`, a stop string or an abort): the output is incomplete.
   */
  complete?: boolean;
}

/**
 * Length of the longest suffix of `text` that is a proper prefix of some stop string: what a
 * stream must hold back until it knows whether a stop string follows.
 * @example
 * ```ts
 * import { heldBack } from "./generate.ts";
 * if (heldBack("Hi\n\nUs", ["\n\nUser:"]) !== 4) throw new Error("holds back \\n\\nUs");
 * ```
 */
export function heldBack(text: string, stops: readonly string[]): number {
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

/** One sequence's decoding: sampling rules, stop tokens and strings, streamed text. */
class Decoding {
  readonly sampler: Sampler;
  readonly maxTokens: number;
  generated = 0;
  reason: GenerateStats["stopReason"] | undefined;
  #tokenizer: Tokenizer;
  #stops: string[];
  #stopTokens: Set<number>;
  #ban: readonly number[];
  #decoder: { push(id: number): string; flush(): string };
  #pending = ""; // decoded text not yet emitted (may start a stop string)
  /** The grammar's position, when the output is constrained. */
  readonly constraint: Constraint | undefined;

  constructor(model: Model, tokenizer: Tokenizer, options: GenerateOptions) {
    if (tokenizer.vocabSize > model.info.vocab) {
      throw new UsageError(
        `tokenizer has ${tokenizer.vocabSize} tokens, the model only ${model.info.vocab}`,
      );
    }
    this.maxTokens = options.maxTokens ?? 200;
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 0) {
      throw new UsageError(`maxTokens must be a whole number ≥ 0, not ${options.maxTokens}`);
    }
    this.#tokenizer = tokenizer;
    this.#stops = (options.stop ?? []).filter((s) => s.length > 0);
    this.#stopTokens = new Set(options.stopTokens ?? []);
    const endOfText = options.stopOnEndOfText ?? tokenizer.kind !== "bytes";
    if (endOfText) this.#stopTokens.add(0);
    this.constraint = constraintFor(tokenizer, options, endOfText);
    this.#ban = options.banTokens ?? [];
    this.sampler = new Sampler(options);
    this.#decoder = tokenizer.createDecoder();
  }

  /**
   * The next tokens from the logits after the last one (masked in place): one drawn token, or
   * the run a grammar forces (no drawing); undefined when generation ends.
   */
  pick(logits: Float32Array, signal?: AbortSignal): number[] | undefined {
    const c = this.constraint;
    if (signal?.aborted) this.reason = "abort";
    else if (this.generated >= this.maxTokens) this.reason = "length";
    else if (c?.finished) this.reason = "end-of-text";
    if (this.reason) return undefined;
    if (c) {
      const forced = c.forced().slice(0, this.maxTokens - this.generated);
      if (forced.length) {
        for (const t of forced) this.#take(t);
        return forced;
      }
    }
    // A World vocabulary has fewer ids than the model's 65536 logits: never pick one it lacks.
    for (let i = this.#tokenizer.vocabSize; i < logits.length; i++) logits[i] = -Infinity;
    for (const t of this.#ban) if (t >= 0 && t < logits.length) logits[t] = -Infinity;
    c?.mask(logits);
    const token = this.sampler.sample(logits);
    if (this.#stopTokens.has(token)) {
      this.reason = c && token !== c.endToken ? "stop" : "end-of-text";
      if (token === c?.endToken) c.accept(token);
      return undefined;
    }
    this.#take(token);
    return [token];
  }

  #take(token: number): void {
    this.constraint?.accept(token);
    this.sampler.accept(token);
    this.generated++;
  }

  /** Text to emit once `token` has been fed (stop strings held back until ruled out). */
  push(token: number): string {
    this.#pending += this.#decoder.push(token);
    const stops = this.#stops;
    let out = "";
    if (stops.length) {
      const hit = stops.map((s) => this.#pending.indexOf(s)).filter((i) => i >= 0);
      if (hit.length) {
        out = this.#pending.slice(0, Math.min(...hit));
        this.#pending = "";
        this.reason = "stop";
        return out;
      }
      const keep = heldBack(this.#pending, stops);
      out = this.#pending.slice(0, this.#pending.length - keep);
      this.#pending = this.#pending.slice(this.#pending.length - keep);
    } else {
      out = this.#pending;
      this.#pending = "";
    }
    return out;
  }

  /** The text still held when generation ends (none after a stop string). */
  finish(): string {
    this.reason ??= "length";
    if (this.reason === "stop") return "";
    const rest = this.#pending + this.#decoder.flush();
    this.#pending = "";
    return rest;
  }
}

/** The constraint of `options.jsonSchema` / `options.grammar`, if any. */
function constraintFor(
  tokenizer: Tokenizer,
  options: GenerateOptions,
  endOfText: boolean,
): Constraint | undefined {
  const { jsonSchema, grammar } = options;
  if (jsonSchema !== undefined && grammar !== undefined) {
    throw new UsageError("give jsonSchema or grammar, not both");
  }
  let g: Grammar | undefined;
  if (jsonSchema !== undefined) g = compileJsonSchema(jsonSchema);
  else if (typeof grammar === "string") g = compileGbnf(grammar);
  else if (grammar instanceof Grammar) g = grammar;
  else if (grammar !== undefined) throw new UsageError("grammar must be GBNF text or a Grammar");
  return g && new Constraint(g, tokenizer, { endToken: endOfText ? 0 : null });
}

function stats(
  prompt: number,
  generated: number,
  t0: number,
  t1: number,
  t2: number,
  reason: GenerateStats["stopReason"],
  constraint?: Constraint,
): GenerateStats {
  return {
    ...(constraint ? { complete: constraint.complete } : {}),
    promptTokens: prompt,
    generatedTokens: generated,
    promptSeconds: (t1 - t0) / 1000,
    generateSeconds: (t2 - t1) / 1000,
    promptTokensPerSecond: prompt / Math.max(1e-9, (t1 - t0) / 1000),
    tokensPerSecond: generated / Math.max(1e-9, (t2 - t1) / 1000),
    stopReason: reason,
  };
}

function promptIds(tokenizer: Tokenizer, prompt: string | readonly number[]): number[] {
  const ids = typeof prompt === "string" ? tokenizer.encode(prompt) : [...prompt];
  if (ids.length === 0) throw new UsageError("the prompt is empty: give at least one token");
  return ids;
}

/**
 * Generates text after `prompt`, streaming pieces as they are decoded (never half a UTF-8
 * character). The iterator's return value is the {@link GenerateStats}.
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import { loadModel } from "./load.ts";
 * import { loadTokenizer } from "./tokenizer/mod.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const tokenizer = await loadTokenizer("bytes");
 * let text = "";
 * for await (const piece of generate(model, tokenizer, "The ", { maxTokens: 20, seed: 1 })) {
 *   text += piece;
 * }
 * console.log(JSON.stringify(text));
 * await model.dispose();
 * ```
 */
export async function* generate(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<string, GenerateStats> {
  const ids = promptIds(tokenizer, prompt);
  const dec = new Decoding(model, tokenizer, options);
  const chunk = options.chunkLen ?? 256;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new UsageError(`chunkLen must be a whole number ≥ 1, not ${options.chunkLen}`);
  }
  const state = options.state ?? model.createState();
  const signal = options.signal;

  // Prompt, in chunks so progress can be shown and an abort is honoured.
  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  let fed = 0;
  while (fed < ids.length && !signal?.aborted) {
    logits = await model.forward(ids.slice(fed, fed + chunk), state);
    fed = Math.min(ids.length, fed + chunk);
    options.onPromptProgress?.(fed, ids.length);
  }
  if (fed === ids.length) options.onPromptLogits?.(logits);
  for (const id of ids) dec.sampler.accept(id);
  const t1 = performance.now();

  for (
    let tokens = dec.pick(logits, signal);
    tokens !== undefined;
    tokens = dec.pick(logits, signal)
  ) {
    // Feed every kept token so the state always matches the text (a chat can go on).
    logits = await model.forward(tokens, state);
    let text = "";
    for (const token of tokens) {
      options.onToken?.(token);
      if (!dec.reason) text += dec.push(token);
    }
    if (text) yield text;
    if (dec.reason) break;
  }
  const rest = dec.finish();
  if (rest) yield rest;
  const s = stats(
    ids.length,
    dec.generated,
    t0,
    t1,
    performance.now(),
    dec.reason!,
    dec.constraint,
  );
  options.onStats?.(s);
  return s;
}

/**
 * One sequence of {@link generateBatch}: its prompt and its own options (sampling, seed,
 * limits, stops, state).
 * @example
 * ```ts
 * import type { BatchRequest } from "./generate.ts";
 * const r: BatchRequest = { prompt: "Once upon a time", maxTokens: 32, seed: 7 };
 * ```
 */
export interface BatchRequest extends GenerateOptions {
  /** Text, or token ids. */
  prompt: string | readonly number[];
}

/**
 * What {@link generateBatch} returns for one request.
 * @example
 * ```ts
 * import type { Model } from "./model/model.ts";
 * import type { Tokenizer } from "./tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * const [first] = await generateBatch(model, tokenizer, [{ prompt: "Hi" }]);
 * console.log(first.text, first.stats.stopReason);
 * ```
 */
export interface BatchResult {
  /** The generated text (stop strings excluded). */
  text: string;
  /** Token ids generated (fed to the model, in order). */
  tokens: number[];
  /** Statistics (the prompt time is that of the batch's shared prompt pass). */
  stats: GenerateStats;
}

/**
 * Generates for many prompts at once: each step runs one `model.forwardBatch` over every
 * unfinished sequence (the prompts together first), each with its own state, sampler and seed,
 * so a request with a fixed seed gives what it gives alone. `onPiece` streams each sequence's
 * text as it is decoded.
 * @example
 * ```ts
 * import { generateBatch } from "./generate.ts";
 * import { loadModel } from "./load.ts";
 * import { loadTokenizer } from "./tokenizer/mod.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const tokenizer = await loadTokenizer("bytes");
 * const results = await generateBatch(model, tokenizer, [
 *   { prompt: "The ", maxTokens: 16, seed: 1 },
 *   { prompt: "In a ", maxTokens: 8, temperature: 0 },
 * ]);
 * console.log(results.map((r) => r.text));
 * await model.dispose();
 * ```
 */
export async function generateBatch(
  model: Model,
  tokenizer: Tokenizer,
  requests: readonly BatchRequest[],
  options: { onPiece?: (index: number, piece: string) => void; signal?: AbortSignal } = {},
): Promise<BatchResult[]> {
  const seqs = requests.map((r) => {
    const ids = promptIds(tokenizer, r.prompt);
    return {
      r,
      ids,
      dec: new Decoding(model, tokenizer, r),
      state: r.state ?? model.createState(),
      text: "",
      tokens: [] as number[],
      logits: new Float32Array(0) as Float32Array,
      t2: 0,
    };
  });
  const emit = (i: number, piece: string) => {
    if (!piece) return;
    seqs[i].text += piece;
    options.onPiece?.(i, piece);
  };
  const t0 = performance.now();
  const aborted = (r: BatchRequest) => options.signal?.aborted || r.signal?.aborted;
  const first = await model.forwardBatch(seqs.map((s) => ({ tokens: s.ids, state: s.state })));
  seqs.forEach((s, i) => {
    s.logits = first[i];
    s.r.onPromptProgress?.(s.ids.length, s.ids.length);
    s.r.onPromptLogits?.(s.logits);
    for (const id of s.ids) s.dec.sampler.accept(id);
  });
  const t1 = performance.now();
  let live = seqs.map((_, i) => i);
  while (live.length) {
    const step: { i: number; tokens: number[] }[] = [];
    for (const i of live) {
      const s = seqs[i];
      const tokens = s.dec.pick(s.logits, aborted(s.r) ? AbortSignal.abort() : undefined);
      if (tokens === undefined) {
        emit(i, s.dec.finish());
        s.t2 = performance.now();
      } else step.push({ i, tokens });
    }
    if (!step.length) break;
    const out = await model.forwardBatch(
      step.map(({ i, tokens }) => ({ tokens, state: seqs[i].state })),
    );
    live = [];
    step.forEach(({ i, tokens }, k) => {
      const s = seqs[i];
      s.logits = out[k];
      for (const token of tokens) {
        s.tokens.push(token);
        s.r.onToken?.(token);
        if (!s.dec.reason) emit(i, s.dec.push(token));
      }
      if (s.dec.reason) {
        emit(i, s.dec.finish());
        s.t2 = performance.now();
      } else live.push(i);
    });
  }
  return seqs.map((s) => {
    const st = stats(s.ids.length, s.dec.generated, t0, t1, s.t2, s.dec.reason!, s.dec.constraint);
    s.r.onStats?.(st);
    return { text: s.text, tokens: s.tokens, stats: st };
  });
}
