/**
 * Multi-turn chat with RWKV "World" models, as ChatRWKV does it: a transcript of
 * `User: …\n\nAssistant: …\n\n` turns, the recurrent state carried from turn to turn so the
 * history is never processed twice (only the new turn's tokens are fed), replies ending at a
 * blank line.
 *
 * @example
 * ```ts
 * import { ChatSession } from "./chat.ts";
 * import { loadModel } from "./load.ts";
 * import { loadTokenizer } from "./tokenizer/mod.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const chat = new ChatSession(model, await loadTokenizer("bytes"), { maxTokens: 20, seed: 1 });
 * for await (const piece of chat.send("Hi!")) Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * const before = chat.state.clone(); // branch the conversation
 * await model.dispose();
 * ```
 * @module
 */

import { UsageError } from "./errors.ts";
import { generate } from "./generate.ts";
import type { Model } from "./model/model.ts";
import { State } from "./model/state.ts";
import { Sampler, type SamplerOptions } from "./sample.ts";
import type { Tokenizer } from "./tokenizer/mod.ts";

/**
 * One message of a conversation, as the OpenAI chat API names them.
 * @example
 * ```ts
 * import type { ChatMessage } from "./chat.ts";
 * const m: ChatMessage = { role: "user", content: "Hello" };
 * ```
 */
export interface ChatMessage {
  /** Who said it. */
  role: "system" | "user" | "assistant";
  /** What was said. */
  content: string;
}

/**
 * Normalises a message as ChatRWKV does before it enters the transcript: `\r\n` → `\n`,
 * surrounding whitespace stripped, runs of newlines collapsed into one (a blank line would
 * end the turn).
 * @example
 * ```ts
 * import { normalizeMessage } from "./chat.ts";
 * import { equal } from "node:assert/strict";
 * equal(normalizeMessage("  Hi\n\n\nthere \r\n"), "Hi\nthere");
 * ```
 */
export function normalizeMessage(text: string): string {
  return text.replace(/\r\n?/g, "\n").trim().replace(/\n+/g, "\n");
}

const LABEL: Record<ChatMessage["role"], string> = {
  system: "System",
  user: "User",
  assistant: "Assistant",
};

/**
 * The transcript text of `messages`, each `Role: content\n\n`, ending with `Assistant:` (no
 * space: World models put the space at the start of the reply's first token).
 * @example
 * ```ts
 * import { buildChatPrompt } from "./chat.ts";
 * import { equal } from "node:assert/strict";
 * equal(buildChatPrompt([{ role: "user", content: "Hi" }]), "User: Hi\n\nAssistant:");
 * ```
 */
export function buildChatPrompt(messages: readonly ChatMessage[]): string {
  let out = "";
  for (const m of messages) {
    const text = normalizeMessage(m.content);
    if (text === "" && m.role !== "assistant") continue;
    out += `${LABEL[m.role]}: ${text}\n\n`;
  }
  return out + "Assistant:";
}

/**
 * Default sampling for chat, ChatRWKV's (`GEN_TEMP` 1.0, `GEN_TOP_P` 0.3, penalties 0.5).
 * @example
 * ```ts
 * import { CHAT_SAMPLING } from "./chat.ts";
 * if (CHAT_SAMPLING.topP !== 0.3) throw new Error("ChatRWKV's top-p is 0.3");
 * ```
 */
export const CHAT_SAMPLING: Readonly<SamplerOptions> = {
  temperature: 1.0,
  topP: 0.3,
  presencePenalty: 0.5,
  frequencyPenalty: 0.5,
  penaltyDecay: 0.996,
};

/**
 * Options of a {@link ChatSession}.
 * @example
 * ```ts
 * import type { ChatOptions } from "./chat.ts";
 * const opts: ChatOptions = { system: "Be brief.", maxTokens: 300, temperature: 0.8, seed: 1 };
 * ```
 */
export interface ChatOptions extends SamplerOptions {
  /** A system prompt, fed once at the start as `System: …\n\n`. */
  system?: string;
  /** Most tokens per reply (default 500). */
  maxTokens?: number;
  /** The state the conversation starts from (e.g. a tuned initial state); cloned. */
  initialState?: State;
  /** End a reply when the model samples token 0 (default: true, except byte-level vocabularies). */
  stopOnEndOfText?: boolean;
}

/**
 * How a reply ended.
 * @example
 * ```ts
 * declare const chat: ChatSession;
 * const it = chat.send("Hi"); let r = await it.next(); while (!r.done) r = await it.next();
 * console.log(r.value.stopReason);
 * ```
 */
export interface ReplyStats {
  /** Tokens fed for the user's turn (only the new ones). */
  promptTokens: number;
  /** Tokens of the reply. */
  generatedTokens: number;
  /** Why it ended. */
  stopReason: "stop" | "length" | "end-of-text" | "abort";
  /** Seconds from the first prompt token to the end of the reply. */
  seconds: number;
}

const TURN_END = "\n\n";

/**
 * A conversation with one model. Each {@link ChatSession.send} feeds only the new turn's
 * tokens to the carried state and streams the reply; the state then ends exactly after the
 * reply's closing blank line, so {@link ChatSession.tokens} is always the whole transcript.
 * @example
 * ```ts
 * import { ChatSession } from "./chat.ts";
 * import { loadModel } from "./load.ts";
 * import { loadTokenizer } from "./tokenizer/mod.ts";
 *
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-7v0.safetensors", { threads: 2 });
 * const chat = new ChatSession(model, await loadTokenizer("bytes"), { maxTokens: 12 });
 * for await (const piece of chat.send("Tell me a joke")) console.log(piece);
 * for await (const piece of chat.regenerate()) console.log(piece); // another answer
 * const file = await Deno.makeTempFile();
 * await chat.save(file);
 * await Deno.remove(file);
 * await model.dispose();
 * ```
 */
export class ChatSession {
  /** The model it talks with. */
  readonly model: Model;
  /** Its tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The options it was made with. */
  readonly options: ChatOptions;
  /** The recurrent state after everything said so far. */
  state: State;
  /** Token ids of the whole transcript so far (empty after {@link ChatSession.load}). */
  tokens: number[] = [];
  /** The conversation so far, as messages. */
  messages: ChatMessage[] = [];
  /** Logits after the last turn's prompt (before its reply): for tests and inspection. */
  lastPromptLogits?: Float32Array;
  #initial: State;
  #beforeReply?: { state: State; tokens: number[]; messages: ChatMessage[]; user: string };
  #turn = 0;
  #busy = false;

  /** A new conversation (bad sampling options are refused here with a UsageError). */
  constructor(model: Model, tokenizer: Tokenizer, options: ChatOptions = {}) {
    if (tokenizer.vocabSize > model.info.vocab) {
      throw new UsageError(
        `tokenizer has ${tokenizer.vocabSize} tokens, the model only ${model.info.vocab}`,
      );
    }
    new Sampler({ ...CHAT_SAMPLING, ...options }); // bad sampling options fail here, not mid-chat
    this.model = model;
    this.tokenizer = tokenizer;
    this.options = options;
    this.#initial = options.initialState?.clone() ?? model.createState();
    this.state = this.#initial.clone();
  }

  /** True while a reply is being generated. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Forgets the conversation: back to the initial state (the system prompt is fed again). */
  reset(): void {
    this.state = this.#initial.clone();
    this.tokens = [];
    this.messages = [];
    this.#beforeReply = undefined;
    this.lastPromptLogits = undefined;
  }

  async #feed(ids: number[]): Promise<void> {
    await this.model.forward(ids, this.state);
    this.tokens.push(...ids);
  }

  /**
   * Sends a user message and streams the reply (leading space dropped). The iterator's
   * return value says how it ended. An abort keeps what was said and closes the turn.
   */
  async *send(
    text: string,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<string, ReplyStats> {
    const msg = normalizeMessage(text);
    if (msg === "") throw new UsageError("empty message");
    if (this.#busy) throw new UsageError("a reply is already being generated");
    this.#busy = true;
    try {
      this.#beforeReply = {
        state: this.state.clone(),
        tokens: this.tokens.slice(),
        messages: this.messages.slice(),
        user: msg,
      };
      return yield* this.#reply(msg, options.signal);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Replaces the last reply with a new one: the state goes back to its clone from before that
   * turn, and the same user message is sent again.
   */
  async *regenerate(options: { signal?: AbortSignal } = {}): AsyncGenerator<string, ReplyStats> {
    const b = this.#beforeReply;
    if (!b) throw new UsageError("nothing to regenerate yet");
    if (this.#busy) throw new UsageError("a reply is already being generated");
    this.#busy = true;
    try {
      this.state = b.state.clone();
      this.tokens = b.tokens.slice();
      this.messages = b.messages.slice();
      return yield* this.#reply(b.user, options.signal);
    } finally {
      this.#busy = false;
    }
  }

  async *#reply(msg: string, signal?: AbortSignal): AsyncGenerator<string, ReplyStats> {
    const t0 = performance.now();
    let prefix = "";
    if (this.tokens.length === 0 && this.options.system) {
      const sys = normalizeMessage(this.options.system);
      if (sys) {
        prefix = `System: ${sys}\n\n`;
        this.messages.push({ role: "system", content: sys });
      }
    }
    const promptIds = this.tokenizer.encode(`${prefix}User: ${msg}\n\nAssistant:`);
    this.messages.push({ role: "user", content: msg });
    const reply: ChatMessage = { role: "assistant", content: "" };
    this.messages.push(reply);
    let promptDone = false;
    const pieces = generate(this.model, this.tokenizer, promptIds, {
      ...CHAT_SAMPLING,
      ...this.options,
      seed: this.options.seed !== undefined ? this.options.seed + this.#turn : undefined,
      maxTokens: this.options.maxTokens ?? 500,
      stop: [TURN_END],
      state: this.state,
      signal,
      onPromptLogits: (logits) => {
        promptDone = true;
        this.lastPromptLogits = logits.slice();
        this.tokens.push(...promptIds);
      },
      onToken: (t) => this.tokens.push(t),
    });
    let text = ""; // the whole reply so far, as decoded (the blank line that ends it excluded)
    let sent = -1; // characters of text already shown; -1 until the reply's first visible one
    let r = await pieces.next();
    while (!r.done) {
      text += r.value;
      // the space after "Assistant:" is not shown, nor trailing whitespace (until more follows)
      if (sent < 0) {
        const m = /[^ \n]/.exec(text);
        if (m) sent = m.index;
      }
      const upTo = text.trimEnd().length;
      if (sent >= 0 && upTo > sent) {
        yield text.slice(sent, upTo);
        sent = upTo;
      }
      r = await pieces.next();
    }
    const stats = r.value;
    if (!promptDone) {
      // stopped during the prompt: forget the half-fed turn
      const b = this.#beforeReply!;
      this.state = b.state.clone();
      this.tokens = b.tokens.slice();
      this.messages = b.messages.slice();
      return { promptTokens: 0, generatedTokens: 0, stopReason: "abort", seconds: 0 };
    }
    this.#turn++;
    if (stats.stopReason !== "stop") {
      // Close the turn so the transcript stays `…\n\n` + next `User:` whatever happened.
      await this.#feed(this.tokenizer.encode(text.endsWith("\n") ? "\n" : TURN_END));
    }
    reply.content = text.trim();
    return {
      promptTokens: promptIds.length,
      generatedTokens: stats.generatedTokens,
      stopReason: stats.stopReason,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /** Saves the state (the conversation's memory) to a file; see `State.save`. */
  async save(path: string): Promise<void> {
    await this.state.save(path);
  }

  /**
   * Loads a state saved by {@link ChatSession.save}: the conversation goes on from it. The
   * transcript text is not in the file, so {@link ChatSession.tokens} starts empty.
   */
  async load(path: string): Promise<void> {
    const s = await State.load(this.model.spec, path);
    this.state = s;
    this.tokens = [];
    this.messages = [];
    this.#beforeReply = undefined;
    this.lastPromptLogits = undefined;
  }
}

/**
 * What {@link runChatCommand} did.
 * @example
 * ```ts
 * declare const session: ChatSession;
 * const r: ChatCommandResult = await runChatCommand(session, "/reset");
 * if (r.kind === "message") console.log(r.text);
 * ```
 */
export type ChatCommandResult =
  | { kind: "message"; text: string }
  | { kind: "regen" }
  | { kind: "quit" }
  | { kind: "chat"; text: string };

/**
 * The help text of the chat commands.
 * @example
 * ```ts
 * import { CHAT_HELP } from "./chat.ts";
 * if (!CHAT_HELP.includes("/save")) throw new Error("the help lists /save");
 * ```
 */
export const CHAT_HELP = `Commands:
  /reset        forget the conversation (start again from the initial state)
  /save FILE    save the conversation's state to FILE
  /load FILE    continue from a state saved with /save
  /regen        replace the last reply with a new one
  /help         this help
  /quit         leave (or Ctrl-D); Ctrl-C stops the current reply`;

/**
 * Interprets one input line: a `/command` (run against `chat`) or text to send.
 * @example
 * ```ts
 * declare const chat: ChatSession;
 * const r = await runChatCommand(chat, "/save my.state"); // { kind: "message", text: "saved …" }
 * ```
 */
export async function runChatCommand(
  chat: ChatSession,
  line: string,
): Promise<ChatCommandResult> {
  const trimmed = line.trim();
  if (!trimmed.startsWith("/")) return { kind: "chat", text: line };
  const sp = trimmed.search(/\s/);
  const cmd = sp < 0 ? trimmed : trimmed.slice(0, sp);
  const arg = sp < 0 ? "" : trimmed.slice(sp).trim();
  switch (cmd) {
    case "/reset":
      chat.reset();
      return { kind: "message", text: "conversation reset" };
    case "/save":
      if (!arg) return { kind: "message", text: "usage: /save FILE" };
      await chat.save(arg);
      return { kind: "message", text: `state saved to ${arg}` };
    case "/load":
      if (!arg) return { kind: "message", text: "usage: /load FILE" };
      await chat.load(arg);
      return { kind: "message", text: `state loaded from ${arg}` };
    case "/regen":
      return { kind: "regen" };
    case "/help":
      return { kind: "message", text: CHAT_HELP };
    case "/quit":
    case "/exit":
      return { kind: "quit" };
    default:
      return { kind: "message", text: `unknown command ${cmd} (try /help)` };
  }
}
