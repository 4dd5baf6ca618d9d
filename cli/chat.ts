/**
 * Chats with an RWKV World model in the terminal (or over piped stdin, a line per message).
 *
 *   deno run -A cli/chat.ts --model MODEL [--system TEXT] [options]
 *
 * @module
 */

import { ChatSession, runChatCommand } from "../lib/chat.ts";
import {
  flagsOrHelp,
  loadFromFlags,
  MODEL_FLAGS,
  MODEL_HELP,
  numberFlag,
  SAMPLING_FLAGS,
} from "./_common.ts";
import { failureLine, runCli } from "./_main.ts";

const HELP =
  `Chat with an RWKV World model (User:/Assistant: transcript, state carried between turns).

Usage:
  deno run -A cli/chat.ts --model MODEL [--system TEXT] [options]

${MODEL_HELP}
  --system TEXT           system prompt, fed once as "System: TEXT"
  --max-tokens N          most tokens per reply (default 500)
  --temperature T         (default 1.0; 0 = greedy)
  --top-p P               (default 0.3)
  --presence-penalty X    (default 0.5)
  --frequency-penalty X   (default 0.5)
  --seed N                reproducible replies

In the chat: /reset, /save FILE, /load FILE, /regen, /help, /quit. Ctrl-C stops the current
reply; Ctrl-D (end of input) leaves.
`;

/** Lines of a byte stream, without their line ends; the last line may lack one. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) yield buf.replace(/\r$/, "");
}

/** Runs the chat CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrHelp({
    args: argv,
    allowPositionals: false,
    options: {
      ...MODEL_FLAGS,
      ...SAMPLING_FLAGS,
      system: { type: "string" },
      "max-tokens": { type: "string" },
    },
  }, HELP);
  if (!parsed) return 0;
  const v = parsed.values;
  const chatOptions = {
    system: v.system,
    maxTokens: numberFlag(v["max-tokens"], "max-tokens", 500, { integer: true, min: 1 }),
    temperature: numberFlag(v.temperature, "temperature", undefined, { min: 0 }),
    topP: numberFlag(v["top-p"], "top-p", undefined, { min: 0, max: 1 }),
    presencePenalty: numberFlag(v["presence-penalty"], "presence-penalty"),
    frequencyPenalty: numberFlag(v["frequency-penalty"], "frequency-penalty"),
    seed: numberFlag(v.seed, "seed", undefined, { integer: true }),
  };
  // a session loads once and decodes for long: huge pages unless asked not to
  const { model, tokenizer } = await loadFromFlags({ ...v, "huge-pages": v["huge-pages"] ?? "on" });
  const enc = new TextEncoder();
  const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  try {
    const chat = new ChatSession(model, tokenizer, chatOptions);
    const tty = Deno.stdin.isTerminal();
    let current: AbortController | undefined;
    let lastIdleInt = 0;
    const onInt = () => {
      if (current) {
        current.abort();
        return;
      }
      const now = Date.now();
      if (now - lastIdleInt < 1500) Deno.exit(130);
      lastIdleInt = now;
      out("\n(Ctrl-C again or /quit to leave)\nUser: ");
    };
    try {
      Deno.addSignalListener("SIGINT", onInt);
    } catch { /* no signals here */ }
    if (tty) out("Type a message, /help for commands.\n");
    const prompt = () => tty && out("User: ");
    prompt();
    try {
      for await (const line of readLines(Deno.stdin.readable)) {
        let r;
        try {
          r = await runChatCommand(chat, line);
        } catch (e) {
          const line = failureLine(e);
          if (line === undefined) throw e;
          out(`${line}\n`);
          prompt();
          continue;
        }
        if (r.kind === "quit") break;
        if (r.kind === "message") {
          out(r.text + "\n");
          prompt();
          continue;
        }
        if (r.kind === "chat" && r.text.trim() === "") {
          prompt();
          continue;
        }
        current = new AbortController();
        try {
          const pieces = r.kind === "regen"
            ? chat.regenerate({ signal: current.signal })
            : chat.send(r.text, { signal: current.signal });
          out("Assistant: ");
          let res = await pieces.next();
          while (!res.done) {
            out(res.value);
            res = await pieces.next();
          }
          out(res.value.stopReason === "abort" ? " [stopped]\n\n" : "\n\n");
        } catch (e) {
          const line = failureLine(e);
          if (line === undefined) throw e;
          out(`${line}\n`);
        } finally {
          current = undefined;
        }
        prompt();
      }
    } finally {
      try {
        Deno.removeSignalListener("SIGINT", onInt);
      } catch { /* no signals here */ }
    }
    if (tty) out("\n");
  } finally {
    await model.dispose();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
