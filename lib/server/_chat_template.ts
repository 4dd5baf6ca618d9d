/**
 * The shape of a chat template (`template.ts` has the templates and the encoder; `tools.ts`
 * writes tool calls in one).
 * @module
 */

/**
 * How messages become text: `{content}` in each pattern is replaced by the message.
 * @example
 * ```ts
 * import { WORLD_TEMPLATE } from "./template.ts";
 * const t: ChatTemplate = { ...WORLD_TEMPLATE, system: "Instructions: {content}\n\n" };
 * ```
 */
export interface ChatTemplate {
  /** A system (or developer) message, e.g. `System: {content}\n\n`. */
  readonly system: string;
  /** A user message, e.g. `User: {content}\n\n`. */
  readonly user: string;
  /** An assistant message, e.g. `Assistant: {content}\n\n`. */
  readonly assistant: string;
  /** What the reply is generated after, e.g. `Assistant:`. */
  readonly generation: string;
  /** Collapse runs of newlines and trim each message as ChatRWKV does (default true). */
  readonly normalize?: boolean;
  /**
   * What the system turn listing a request's functions says (written with `system`); `{tools}`
   * becomes one JSON line per function, `{toolCall}` the call tag (default
   * {@link TOOL_TEMPLATE}`.tools`).
   */
  readonly tools?: string;
  /** A function's result sent back, e.g. `Tool: {content}\n\n` (default `TOOL_TEMPLATE.tool`). */
  readonly tool?: string;
  /** The tag that opens a reply's calls, a JSON list of them after it (default `<tool_call>`). */
  readonly toolCall?: string;
}
