/**
 * The chat template the server turns messages into, and the stop strings that end a reply.
 * Defaults are the RWKV World format of `lib/chat.ts` (`User: …\n\nAssistant: …\n\n`, replies
 * ending at a blank line). Each message is encoded on its own and the pieces concatenated, as
 * ChatRWKV feeds turns, so a conversation's tokens up to the end of any message are the same
 * whatever follows: that is what lets the prefix cache resume token-exactly.
 * @module
 */

import { normalizeMessage } from "../chat.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import { callsText, TOOL_TEMPLATE, type ToolCall } from "./tools.ts";
import type { ChatTemplate } from "./_chat_template.ts";

export type { ChatTemplate } from "./_chat_template.ts";

/**
 * RWKV World's chat format (the `lib/chat.ts` transcript).
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * import { createApi } from "./openai.ts";
 * declare const model: Model, tokenizer: Tokenizer;
 * createApi({ model, tokenizer, template: WORLD_TEMPLATE, stop: WORLD_STOPS });
 * ```
 */
export const WORLD_TEMPLATE: ChatTemplate = {
  system: "System: {content}\n\n",
  user: "User: {content}\n\n",
  assistant: "Assistant: {content}\n\n",
  generation: "Assistant:",
  normalize: true,
  ...TOOL_TEMPLATE,
};

/**
 * Where a World chat reply ends: a blank line, or the model starting the user's turn.
 * @example
 * ```ts
 * const stops = [...WORLD_STOPS, "\nSystem:"];
 * ```
 */
export const WORLD_STOPS: readonly string[] = ["\n\n", "\nUser:"];

/**
 * The chat template a model file names (a GGUF's `tokenizer.chat_template`), when it is one of
 * llama.cpp's formats we know, recognised as llama.cpp recognises them (it does not run the
 * Jinja either): {@link WORLD_TEMPLATE} (`User: …\n\nAssistant: …\n\n`) for the name
 * `rwkv-world`, or a Jinja text that contains it or the RWKV World user turn
 * `{{- 'User: ' + message['content']|trim + '\n\n' -}}`. Undefined for anything else.
 * @example
 * ```ts
 * namedTemplate("rwkv-world") === WORLD_TEMPLATE; // true
 * namedTemplate("{% for message in messages %}<|im_start|>…"); // undefined
 * ```
 */
export function namedTemplate(name: string | undefined): ChatTemplate | undefined {
  if (name === undefined) return undefined;
  return name.includes("rwkv-world") || name.includes(RWKV_WORLD_JINJA)
    ? WORLD_TEMPLATE
    : undefined;
}

/** The user turn of RWKV World chat templates in Jinja, as llama.cpp's template detection has it. */
const RWKV_WORLD_JINJA = "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}";

/**
 * A message of a conversation.
 * @example
 * ```ts
 * const m: TemplateMessage = { role: "user", content: "Hi" };
 * ```
 */
export interface TemplateMessage {
  /** Who speaks (`tool`: a function's result). */
  readonly role: "system" | "user" | "assistant" | "tool";
  /** What they say. */
  readonly content: string;
  /** An assistant's function calls (written after its content in the call format). */
  readonly toolCalls?: readonly ToolCall[];
  /** Text already in its final form (no pattern, no normalizing), e.g. the tools' turn. */
  readonly raw?: boolean;
}

/**
 * Tokens of a conversation and the positions where each message ends (prefix-cache points).
 * @example
 * ```ts
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const tokenizer: Tokenizer, messages: TemplateMessage[];
 * const { tokens, boundaries } = encodeChat(tokenizer, WORLD_TEMPLATE, messages);
 * ```
 */
export interface EncodedChat {
  /** Every message, then the generation prefix. */
  readonly tokens: number[];
  /** Token counts at the end of each message (ascending, excluding 0 and the total). */
  readonly boundaries: number[];
}

/**
 * Checks that every pattern holds `{content}` (the generation prefix holds none).
 * @example
 * ```ts
 * validateTemplate({ ...WORLD_TEMPLATE, user: "Q: {content}\n" });
 * ```
 */
export function validateTemplate(t: ChatTemplate): void {
  for (const k of ["system", "user", "assistant"] as const) {
    if (typeof t[k] !== "string" || !t[k].includes("{content}")) {
      throw new RangeError(`chat template: '${k}' must be a string holding {content}`);
    }
  }
  if (t.tool !== undefined && (typeof t.tool !== "string" || !t.tool.includes("{content}"))) {
    throw new RangeError("chat template: 'tool' must be a string holding {content}");
  }
  if (t.tools !== undefined && (typeof t.tools !== "string" || !t.tools.includes("{tools}"))) {
    throw new RangeError("chat template: 'tools' must be a string holding {tools}");
  }
  if (t.toolCall !== undefined && (typeof t.toolCall !== "string" || !t.toolCall.trim())) {
    throw new RangeError("chat template: 'toolCall' must be a non-empty string");
  }
  if (typeof t.generation !== "string") {
    throw new RangeError("chat template: 'generation' must be a string");
  }
}

/**
 * Encodes `messages` then the generation prefix, one message at a time. An assistant message
 * whose pattern starts with the generation prefix is encoded as that prefix, then the rest: the
 * same tokens the model saw when it generated the reply after the prefix.
 * @example
 * ```ts
 * import { ByteTokenizer } from "../tokenizer/bytes.ts";
 * const tok = new ByteTokenizer();
 * encodeChat(tok, WORLD_TEMPLATE, [{ role: "user", content: "Hi" }]).tokens; // "User: Hi\n\nAssistant:"
 * ```
 */
export function encodeChat(
  tokenizer: Tokenizer,
  template: ChatTemplate,
  messages: readonly TemplateMessage[],
  generate = true,
): EncodedChat {
  const tokens: number[] = [];
  const boundaries: number[] = [];
  for (const m of messages) {
    if (m.raw) {
      tokens.push(...tokenizer.encode(m.content));
      if (tokens.length > 0) boundaries.push(tokens.length);
      continue;
    }
    let text = template.normalize === false ? m.content : normalizeMessage(m.content);
    if (m.toolCalls?.length) text = (text ? text + "\n" : "") + callsText(template, m.toolCalls);
    if (text === "" && m.role !== "assistant") continue;
    const pattern = m.role === "tool" ? template.tool ?? TOOL_TEMPLATE.tool : template[m.role];
    const whole = pattern.replaceAll("{content}", text);
    if (m.role === "assistant" && template.generation && whole.startsWith(template.generation)) {
      tokens.push(...tokenizer.encode(template.generation));
      tokens.push(...tokenizer.encode(whole.slice(template.generation.length)));
    } else tokens.push(...tokenizer.encode(whole));
    if (tokens.length > 0) boundaries.push(tokens.length);
  }
  if (generate && template.generation) tokens.push(...tokenizer.encode(template.generation));
  const last = boundaries.at(-1);
  if (last === tokens.length) boundaries.pop();
  return { tokens, boundaries };
}
