/**
 * What every endpoint of the server shares: the model and its scheduler, the state bank, the
 * limits, and one way to run a generation through the scheduler into text.
 * @module
 */

import { RwkvError } from "../errors.ts";
import type { Model } from "../model/model.ts";
import type { State } from "../model/state.ts";
import { Sampler, type SamplerOptions } from "../sample.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import { HttpError } from "./_http.ts";
import { TextStream } from "./_text.ts";
import type { TokenLogprob } from "./logprobs.ts";
import {
  type FinishReason,
  QueueFullError,
  type Scheduler,
  type TokenConstraint,
} from "./scheduler.ts";
import { StateBank, StateMismatchError } from "./states.ts";
import { StoreUnavailableError } from "./store.ts";
import type { ChatTemplate } from "./template.ts";

/** Everything a handler needs. */
export interface Core {
  readonly model: Model;
  readonly tokenizer: Tokenizer;
  readonly scheduler: Scheduler;
  /** The state bank; its identity is known once `ready` resolved. */
  readonly bank: () => Promise<StateBank>;
  readonly modelName: string;
  /** Every name a request may use for the model (the name and the aliases). */
  readonly names: ReadonlySet<string>;
  readonly template: ChatTemplate;
  readonly stops: readonly string[];
  readonly maxBody: number;
  readonly defaultMaxTokens: number;
  readonly maxTokensLimit: number;
  readonly maxPromptTokens: number;
  readonly prefixCache: boolean;
  /** States loaded at start-up, by name. */
  readonly namedStates: ReadonlyMap<string, State>;
  readonly created: number;
}

/** What one generation produced. */
export interface RunResult {
  readonly text: string;
  /** Generated tokens (all of them, including a stop string's). */
  readonly tokens: number[];
  readonly reason: FinishReason;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  /** Log probabilities of the tokens behind `text` (when asked; a stop string's are left out). */
  readonly logprobs: TokenLogprob[];
}

/** A generation to run. */
export interface RunSpec {
  /** Tokens to read now, from `state` on (at least one). */
  readonly prompt: readonly number[];
  readonly state: State;
  /** Tokens the sampler counts as seen before generating (penalties): the whole context. */
  readonly context: readonly number[];
  readonly sampling: SamplerOptions;
  readonly maxTokens: number;
  readonly stops: readonly string[];
  /** Drop the reply's leading whitespace (chat). */
  readonly trimStart: boolean;
  /** Keep the state covering every generated token (the state is stored afterwards). */
  readonly feedLast: boolean;
  readonly checkpoints?: readonly number[];
  readonly onCheckpoint?: (position: number, state: State) => void;
  readonly signal: AbortSignal;
  /** Constrained decoding (a grammar's state, or the tools' call format). */
  readonly constraint?: TokenConstraint;
  /** Report log probabilities with this many alternatives (0–20); undefined: none. */
  readonly logprobs?: number;
  /** Asked after every token: true once stop strings must no longer end the text. */
  readonly stopsOff?: () => boolean;
  /**
   * Each text piece as it is decoded, with the log probabilities of the tokens it completes
   * (empty unless asked; a piece may be "" when only log probabilities are new at the end).
   */
  readonly onText?: (piece: string, logprobs: readonly TokenLogprob[]) => void;
}

/** Checks a prompt's length against the limit (400 `prompt_too_long`). */
export function checkPromptLength(core: Core, n: number, param: string): void {
  if (n > core.maxPromptTokens) {
    throw new HttpError(
      400,
      `the prompt is ${n} tokens, more than this server's limit of ${core.maxPromptTokens} ` +
        `(--max-prompt-tokens)`,
      "invalid_request_error",
      param,
      "prompt_too_long",
    );
  }
}

/**
 * Starts a generation in the scheduler; resolves when it ends. A disconnect (the signal) or
 * `cancel` drops it within one step.
 */
export function startRun(
  core: Core,
  spec: RunSpec,
): { done: Promise<RunResult>; cancel: () => void } {
  let sampler: Sampler;
  try {
    sampler = new Sampler(spec.sampling);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  for (const t of spec.context) sampler.accept(t);
  const text = new TextStream(core.tokenizer, spec.stops, spec.trimStart);
  const tokens: number[] = [];
  const reported: TokenLogprob[] = [];
  let unsent: TokenLogprob[] = [];
  const send = (piece: string) => {
    if (!piece && unsent.length === 0) return;
    reported.push(...unsent);
    const lps = unsent;
    unsent = [];
    spec.onText?.(piece, lps);
  };
  let seq: ReturnType<Scheduler["submit"]>;
  try {
    seq = core.scheduler.submit({
      tokens: spec.prompt,
      state: spec.state,
      sampler,
      maxTokens: spec.maxTokens,
      vocabLimit: core.tokenizer.vocabSize,
      endToken: endToken(core.tokenizer),
      feedLast: spec.feedLast,
      checkpoints: spec.checkpoints,
      onCheckpoint: spec.onCheckpoint,
      signal: spec.signal,
      constraint: spec.constraint,
      logprobs: spec.logprobs,
      onToken: (t, lp) => {
        tokens.push(t);
        if (lp) unsent.push(lp);
        if (spec.stopsOff?.()) text.disableStops();
        const piece = text.push(t);
        if (piece || (lp && !text.stopped && !text.holding)) send(piece);
        if (text.stopped) seq.stop();
      },
    });
  } catch (e) {
    if (e instanceof QueueFullError) {
      throw new HttpError(429, e.message, "rate_limit_exceeded", null, "queue_full");
    }
    throw e;
  }
  const done = seq.done.then((r) => {
    if (r.reason === "error") throw r.error;
    if (r.reason !== "abort" && !text.stopped) send(text.flush());
    return {
      text: text.text,
      tokens,
      reason: text.stopped ? "stop" : r.reason,
      promptTokens: r.promptTokens,
      generatedTokens: r.generatedTokens,
      logprobs: reported,
    } satisfies RunResult;
  });
  return { done, cancel: () => seq.cancel() };
}

/** The id that ends a text, if the tokenizer has one (World and HF: 0; bytes: none). */
export function endToken(tokenizer: Tokenizer): number | undefined {
  return tokenizer.kind === "bytes" ? undefined : 0;
}

/** Maps the store's and states' errors to HTTP ones (503 unavailable, 409 another model). */
export function storeError(e: unknown): never {
  if (e instanceof StoreUnavailableError) {
    throw new HttpError(503, e.message, "server_error", null, "state_store_unavailable");
  }
  if (e instanceof StateMismatchError) {
    throw new HttpError(409, e.message, "invalid_request_error", null, "state_model_mismatch");
  }
  if (e instanceof RwkvError) throw new HttpError(400, e.message);
  throw e;
}

/** Runs a store operation, turning its failures into HTTP errors. */
export async function withStore<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    return storeError(e);
  }
}

/** 404 `model_not_found` unless `name` (when given) is one of the server's names. */
export function checkModel(core: Core, name: unknown): void {
  if (name === undefined || name === null) return;
  if (typeof name !== "string") {
    throw new HttpError(400, "'model' must be a string", "invalid_request_error", "model");
  }
  if (!core.names.has(name)) {
    throw new HttpError(
      404,
      `The model '${name}' does not exist: this server runs ${[...core.names].join(", ")}`,
      "invalid_request_error",
      "model",
      "model_not_found",
    );
  }
}

/** The state a request asks to start from (`state`: a name), cloned; undefined: none asked. */
export async function namedState(core: Core, name: unknown): Promise<State | undefined> {
  if (name === undefined || name === null) return undefined;
  if (typeof name !== "string" || !/^[\w.-]{1,128}$/.test(name)) {
    throw new HttpError(
      400,
      "'state' must be a state name (letters, digits, . _ -, at most 128)",
      "invalid_request_error",
      "state",
    );
  }
  const fixed = core.namedStates.get(name);
  if (fixed) return fixed.clone();
  const bank = await core.bank();
  const got = await withStore(() => bank.load(`named:${name}`));
  if (!got) {
    throw new HttpError(
      404,
      `no state named '${name}'`,
      "invalid_request_error",
      "state",
      "state_not_found",
    );
  }
  return got.state;
}
