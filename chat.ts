/**
 * Multi-turn chat in the RWKV World format, the state kept between turns: what `cli/chat.ts`
 * runs.
 *
 * @example
 * ```ts ignore
 * import { ChatSession } from "./chat.ts";
 * const chat = new ChatSession(model, tokenizer);
 * for await (const piece of chat.reply("Hello!")) Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * ```
 * @module
 */

export * from "./lib/chat.ts";
