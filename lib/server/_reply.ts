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
import { TOOL_TEMPLATE, type ToolCall, type ToolChoice, type ToolDef } from "./tools.ts";
import { type CallEvent, CallScanner, EitherConstraint, ReplyConstraint } from "./_tool_reply.ts";

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
  /** Where the reply stands: still choosing, calling functions, or content. */
  readonly #mode: () => "undecided" | "calling" | "text";
  #tools: boolean;
  #scanner: CallScanner | undefined;
  #held = "";
  #heldLogprobs: TokenLogprob[] = [];
  #logprobs: TokenLogprob[] = [];
  #constrainedText: boolean;

  /**
   * `grammar`: a fresh constraint of the response format (undefined: none); `calls`: a fresh
   * constraint of the calls' grammar when tools may be called (`choice` not `none`). With
   * `auto` and a format, the reply is either calls or content in the format.
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
    const format = opts.grammar
      ? new ReplyConstraint(tokenizer, opts.lead, "forced", opts.grammar)
      : undefined;
    this.#constrainedText = format !== undefined;
    this.#tools = opts.calls !== undefined && opts.choice !== undefined && opts.choice !== "none";
    if (!this.#tools) {
      this.constraint = format;
      this.#mode = () => "text";
      return;
    }
    this.#scanner = new CallScanner(tag);
    if (opts.choice !== "auto") {
      this.constraint = new ReplyConstraint(tokenizer, opts.lead + tag, "forced", opts.calls!);
      this.#mode = () => "calling";
    } else if (!format) {
      const calls = new ReplyConstraint(tokenizer, opts.lead + tag, "auto", opts.calls!);
      this.constraint = calls;
      this.#mode = () => calls.undecided ? "undecided" : calls.calling ? "calling" : "text";
    } else {
      // calls or content in the format: the model's tokens choose (the tag as it tokenizes)
      const calls = new ReplyConstraint(tokenizer, opts.lead + tag, "forced", opts.calls!);
      const either = new EitherConstraint([calls, format]);
      this.constraint = either;
      this.#mode = () =>
        either.alive.length > 1 ? "undecided" : either.alive[0] === calls ? "calling" : "text";
    }
  }

  /** True when the model is shown functions it may call. */
  get offersTools(): boolean {
    return this.#tools;
  }

  /** For the run: stop strings end a reply only while it is free text. */
  readonly stopsOff = (): boolean => this.#constrainedText || this.#mode() === "calling";

  /** A piece of the reply's text and its tokens' log probabilities → what to stream now. */
  push(piece: string, logprobs: readonly TokenLogprob[]): ReplyEvent[] {
    const mode = this.#mode();
    if (mode === "undecided") {
      this.#held += piece;
      this.#heldLogprobs.push(...logprobs);
      return [];
    }
    const text = this.#held + piece;
    const lps = this.#heldLogprobs.length ? [...this.#heldLogprobs, ...logprobs] : logprobs;
    this.#held = "";
    this.#heldLogprobs = [];
    if (mode === "calling") {
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
    const calling = this.#mode() === "calling";
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
