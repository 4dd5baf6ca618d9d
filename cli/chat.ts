/**
 * Chats with an RWKV World model in the terminal (or over piped stdin, a line per message).
 *
 *   deno run -A cli/chat.ts --model MODEL [--system TEXT] [options]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ChatSession, runChatCommand } from "../lib/chat.ts";
import { RwkvError, UsageError } from "../lib/errors.ts";
import { resolveModel } from "../lib/fetch.ts";
import { loadModel } from "../lib/load.ts";
import { loadTimeStateFile } from "../lib/model/time_state.ts";
import { progressBar } from "../lib/progress.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";
import { runCli } from "./_main.ts";

const HELP =
  `Chat with an RWKV World model (User:/Assistant: transcript, state carried between turns).

Usage:
  deno run -A cli/chat.ts --model MODEL [--system TEXT] [options]

  --model PATH|URL|hf:OWNER/REPO/FILE   checkpoint (downloaded into the cache when a URL)
  --tokenizer PATH|bytes  default: a known tokenizer file next to the model
  --state FILE            a state-tuning file (blocks.N.att.time_state tensors, .pth/.safetensors)
  --system TEXT           system prompt, fed once as "System: TEXT"
  --dtype auto|f32|bf16|f16|q8|q4   (default auto)
  --threads N             worker threads (default: cores)
  --engine auto|fast|reference
  --max-tokens N          most tokens per reply (default 500)
  --temperature T         (default 1.0; 0 = greedy)
  --top-p P               (default 0.3)
  --presence-penalty X    (default 0.5)
  --frequency-penalty X   (default 0.5)
  --seed N                reproducible replies
  --quiet                 no loading progress
  -h, --help

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

function num(v: string | undefined, name: string, def?: number): number | undefined {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} must be a number, not ${JSON.stringify(v)}`);
  }
  return n;
}

/** Runs the chat CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        tokenizer: { type: "string" },
        state: { type: "string" },
        system: { type: "string" },
        dtype: { type: "string" },
        threads: { type: "string" },
        engine: { type: "string" },
        "max-tokens": { type: "string" },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        "presence-penalty": { type: "string" },
        "frequency-penalty": { type: "string" },
        seed: { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n(see --help)`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (!v.model) {
    console.error("error: --model is required (see --help)");
    return 2;
  }
  const quiet = v.quiet;
  const modelPath = await resolveModel(v.model, { quiet });
  const loadBar = progressBar("loading", "count", quiet);
  const model = await loadModel(modelPath, {
    dtype: (v.dtype ?? "auto") as "auto",
    engine: (v.engine ?? "auto") as "auto",
    threads: num(v.threads, "threads"),
    onProgress: (d, t, name) => loadBar.update(d, t, name),
  });
  const enc = new TextEncoder();
  const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  try {
    const i = model.info;
    loadBar.finish(`RWKV-${i.version} ${i.layers}×${i.embd}, ${i.dtype}, ${i.engine}`);
    const tokPath = v.tokenizer ?? await findTokenizerFor(modelPath, i.vocab);
    if (!tokPath) {
      throw new UsageError(
        `no tokenizer for vocab ${i.vocab} next to ${modelPath}: pass --tokenizer`,
      );
    }
    const tokenizer = await loadTokenizer(tokPath);
    if (v.state) model.initialState = await loadTimeStateFile(model, v.state);
    const chat = new ChatSession(model, tokenizer, {
      system: v.system,
      maxTokens: num(v["max-tokens"], "max-tokens", 500),
      temperature: num(v.temperature, "temperature"),
      topP: num(v["top-p"], "top-p"),
      presencePenalty: num(v["presence-penalty"], "presence-penalty"),
      frequencyPenalty: num(v["frequency-penalty"], "frequency-penalty"),
      seed: num(v.seed, "seed"),
    });
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
          if (!(e instanceof RwkvError) && !(e instanceof Deno.errors.NotFound)) throw e;
          out(`error: ${(e as Error).message}\n`);
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
          if (!(e instanceof RwkvError)) throw e;
          out(`error: ${e.message}\n`);
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
