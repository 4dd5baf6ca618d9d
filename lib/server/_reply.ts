/**
 * One assistant reply as the chat and Responses endpoints shape it: its constraint (a response
 * format's grammar, or the tools' call format), and its text split, while it streams, into
 * content (with log probabilities) or function calls.
 * @module
 */

import type { Tokenizer } from "../tokenizer/mod.ts";
import type { Core, RunResult } from "./_core.ts";
import { callsGrammar, constraintOf, formatGrammar, type OutputFormat } from "./formats.ts";
import { chatLogprob, type TokenLogprob } from "./logprobs.ts";
import type { TokenConstraint } from "./scheduler.ts";
import type { ChatTemplate } from "./template.ts";
import {
  type CallEvent,
  CallScanner,
  ReplyConstraint,
  TOOL_TEMPLATE,
  type ToolCall,
  type ToolChoice,
  type ToolDef,
} from "./tools.ts";

/** What a reply streams: content (with its tokens' log probabilities) or news of a call. */
export type ReplyEvent =
  | { readonly kind: "text"; readonly text: string; readonly logprobs: readonly TokenLogprob[] }
  | { readonly kind: "call"; readonly event: CallEvent };

/** How a reply ended, in OpenAI's terms. */
export interface ReplyEnd {
  /** The content (null when the reply is calls only). */
  readonly content: string | null;
  /** The calls (empty: none). */
  readonly calls: ToolCall[];
  /** `stop`, `length` (cut by the token limit) or `tool_calls`. */
  readonly finish: "stop" | "length" | "tool_calls";
  /** Log probabilities of the content's tokens (when asked). */
  readonly logprobs: readonly TokenLogprob[];
}

/**
 * What a chat reply starts with after the generation prefix (World: the space of
 * `Assistant: {content}` after `Assistant:`); a constrained reply is given it first.
 */
export function replyLead(template: ChatTemplate): string {
  const [before] = template.assistant.split("{content}");
  return before.startsWith(template.generation) ? before.slice(template.generation.length) : "";
}

/**
 * Shapes one reply: give {@link Reply.constraint} and {@link Reply.stopsOff} to the run, feed
 * it every text piece ({@link Reply.push}), then {@link Reply.end}.
 */
export class Reply {
  /** The reply's constraint (undefined: free text). */
  readonly constraint: TokenConstraint | undefined;
  #tools: ReplyConstraint | undefined;
  #scanner: CallScanner | undefined;
  #held = "";
  #heldLogprobs: TokenLogprob[] = [];
  #logprobs: TokenLogprob[] = [];

  /**
   * `grammar`: a fresh constraint of the response format (undefined: none); `calls`: a fresh
   * constraint of the calls' grammar when tools may be called (`choice` not `none`).
   */
  constructor(
    tokenizer: Tokenizer,
    template: ChatTemplate,
    opts: {
      lead: string;
      grammar?: () => TokenConstraint;
      calls?: () => TokenConstraint;
      choice?: ToolChoice;
    },
  ) {
    const tag = template.toolCall ?? TOOL_TEMPLATE.toolCall;
    if (opts.calls && opts.choice && opts.choice !== "none") {
      const mode = opts.choice === "auto" ? "auto" : "forced";
      this.#tools = new ReplyConstraint(tokenizer, opts.lead + tag, mode, opts.calls);
      this.#scanner = new CallScanner(tag);
      // in auto mode a reply that is not a call may still have to match the response format:
      // not offered (a grammar over both is future work); the format then applies alone
      this.constraint = this.#tools;
    } else if (opts.grammar) {
      this.constraint = new ReplyConstraint(tokenizer, opts.lead, "forced", opts.grammar);
    }
  }

  /** True when the model is shown functions it may call. */
  get offersTools(): boolean {
    return this.#tools !== undefined;
  }

  /** For the run: stop strings end a reply only while it is free text. */
  readonly stopsOff = (): boolean => {
    if (this.#tools) return this.#tools.calling;
    return this.constraint !== undefined;
  };

  /** A piece of the reply's text and its tokens' log probabilities → what to stream now. */
  push(piece: string, logprobs: readonly TokenLogprob[]): ReplyEvent[] {
    const t = this.#tools;
    if (t?.undecided) {
      this.#held += piece;
      this.#heldLogprobs.push(...logprobs);
      return [];
    }
    const text = this.#held + piece;
    const lps = this.#heldLogprobs.length ? [...this.#heldLogprobs, ...logprobs] : logprobs;
    this.#held = "";
    this.#heldLogprobs = [];
    if (t?.calling) {
      return this.#scanner!.push(text).map((event) => ({ kind: "call", event }));
    }
    this.#logprobs.push(...lps);
    return text || lps.length ? [{ kind: "text", text, logprobs: lps }] : [];
  }

  /** The reply's end (call after the run resolved, with what was held still pushed). */
  end(r: RunResult): { end: ReplyEnd; events: ReplyEvent[] } {
    const events: ReplyEvent[] = [];
    if (this.#held) {
      // still undecided at the end: the reply was text after all
      events.push({ kind: "text", text: this.#held, logprobs: this.#heldLogprobs });
      this.#logprobs.push(...this.#heldLogprobs);
    }
    const calling = this.#tools?.calling === true;
    const length = r.reason === "length";
    return {
      end: {
        content: calling ? null : r.text,
        calls: calling ? this.#scanner!.calls.filter((c) => c.name) : [],
        finish: length ? "length" : calling ? "tool_calls" : "stop",
        logprobs: this.#logprobs,
      },
      events,
    };
  }
}

/**
 * The {@link Reply} of a request: its format's grammar and its tools' call grammar compiled
 * now (a bad schema is a 400 before anything is held). Completions (a raw prompt) take no
 * tools and no reply lead.
 */
export function makeReply(
  core: Core,
  format: OutputFormat | undefined,
  tools: { tools: readonly ToolDef[]; choice: ToolChoice; parallel: boolean } | undefined,
  api: "chat" | "responses" | "completions",
): Reply {
  const tok = core.tokenizer;
  const grammar = format ? constraintOf(formatGrammar(format), tok) : undefined;
  const calls = tools && api !== "completions" && tools.choice !== "none" && tools.tools.length
    ? constraintOf(callsGrammar(tools.tools, tools.choice, tools.parallel, api), tok)
    : undefined;
  return new Reply(tok, core.template, {
    lead: api === "completions" ? "" : replyLead(core.template),
    grammar,
    calls,
    choice: tools?.choice,
  });
}

/**
 * Chat completions' `choices[0]` of a finished reply (`logprobs`: whether they were asked).
 */
export function chatChoice(
  tokenizer: Tokenizer,
  end: ReplyEnd,
  logprobs: boolean,
): Record<string, unknown> {
  return {
    index: 0,
    message: {
      role: "assistant",
      content: end.content,
      refusal: null,
      ...(end.calls.length > 0 && {
        tool_calls: end.calls.map((c) => ({
          id: c.id,
          type: "function",
          function: { name: c.name, arguments: c.arguments },
        })),
      }),
    },
    logprobs: logprobs
      ? { content: end.logprobs.map((lp) => chatLogprob(tokenizer, lp)), refusal: null }
      : null,
    finish_reason: end.finish,
  };
}

/** Chat completions' streamed `choices[0]` deltas for some reply events. */
export function chatDeltas(
  tokenizer: Tokenizer,
  events: readonly ReplyEvent[],
  logprobs: boolean,
): Record<string, unknown>[] {
  return events.map((e) => {
    if (e.kind === "text") {
      return {
        index: 0,
        delta: { content: e.text },
        logprobs: logprobs
          ? { content: e.logprobs.map((lp) => chatLogprob(tokenizer, lp)), refusal: null }
          : null,
        finish_reason: null,
      };
    }
    const ev = e.event;
    const call = ev.kind === "start"
      ? { index: ev.index, id: ev.id, type: "function", function: { name: ev.name, arguments: "" } }
      : { index: ev.index, function: { arguments: ev.text } };
    return { index: 0, delta: { tool_calls: [call] }, logprobs: null, finish_reason: null };
  });
}
