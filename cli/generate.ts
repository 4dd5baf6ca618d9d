/**
 * Generates text with an RWKV model, streaming to stdout.
 *
 *   deno run -A cli/generate.ts --model MODEL [--prompt TEXT] [options]
 *
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { download, DownloadError, resolveModel } from "../lib/fetch.ts";
import { generate, type GenerateStats } from "../lib/generate.ts";
import { readGrammarFlags } from "./_grammar.ts";
import { State } from "../lib/model/state.ts";
import { progressBar } from "../lib/progress.ts";
import {
  flagsOrHelp,
  LOAD_HELP,
  loadFromFlags,
  MODEL_FLAGS,
  numberFlag,
  readAllText,
  SAMPLING_FLAGS,
} from "./_common.ts";
import { runCli } from "./_main.ts";

/** The classic RWKV demo prompt. */
export const DRAGON_PROMPT =
  "\nIn a shocking finding, scientist discovered a herd of dragons living in a remote, " +
  "previously unexplored valley, in Tibet. Even more surprising to the researchers was the " +
  "fact that the dragons spoke perfect Chinese.";

/** The model used when no --model is given: RWKV-7 World 0.1B, fetched on first use. */
export const DEFAULT_MODEL =
  "hf:BlinkDL/rwkv-7-world/RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth";
/** The World vocabulary, pinned by its sha256. */
export const WORLD_VOCAB = {
  url: "https://raw.githubusercontent.com/BlinkDL/ChatRWKV/main/tokenizer/rwkv_vocab_v20230424.txt",
  name: "rwkv_vocab_v20230424.txt",
  sha256: "e6dee3d4e31b4d5c40ac99508ac6c701ceef4bed681bf2167ce9a908552bca89",
};

const DEFAULTS = {
  "max-tokens": "200",
  temperature: "1.0",
  "top-p": "0.85",
  "top-k": "0",
  "min-p": "0",
  "top-a": "0",
  "typical-p": "1",
  "presence-penalty": "0",
  "frequency-penalty": "0",
  "repetition-penalty": "1",
  "penalty-decay": "0.996",
  "mirostat-eta": "0.1",
};

const HELP = `Generate text with an RWKV model (RWKV-4, 5, 6 or 7), streaming to stdout.

Usage:
  deno run -A cli/generate.ts --model MODEL [--prompt TEXT | --prompt-file FILE | < stdin]

Model and tokenizer:
  --model PATH|URL|hf:OWNER/REPO/FILE
                          .pth, .safetensors, rwkv.cpp .bin or quantized .safetensors file;
                          URLs are downloaded once into the cache ($RWKV_CACHE or
                          ~/.cache/rwkv-deno). Default: ${DEFAULT_MODEL}
                          with the World vocabulary, fetched on first use
${LOAD_HELP}
  --state-in FILE         start from a saved state (e.g. a processed prompt)
  --state-out FILE        save the state after generation

Prompt and length:
  --prompt TEXT           default: the dragon prompt (stdin when piped)
  --prompt-file FILE
  --max-tokens N          (default ${DEFAULTS["max-tokens"]})
  --stop TEXT             stop when TEXT appears (repeatable)

Structured output (the output is guaranteed to match; stderr says when --max-tokens cut it):
  --json-schema FILE      JSON accepted by this JSON Schema (a .json file)
  --grammar FILE          text matching this GBNF grammar (llama.cpp's format, rule root)

Sampling (applied in this order: logit bias, penalties, temperature, filters):
  --temperature T         0 = greedy (default ${DEFAULTS.temperature})
  --top-p P               nucleus (default ${DEFAULTS["top-p"]}; 1 = off)
  --top-k K               (default ${DEFAULTS["top-k"]} = off)
  --min-p P               (default ${DEFAULTS["min-p"]} = off)
  --top-a A               (default ${DEFAULTS["top-a"]} = off)
  --typical-p P           (default ${DEFAULTS["typical-p"]} = off)
  --presence-penalty X    (default ${DEFAULTS["presence-penalty"]})
  --frequency-penalty X   (default ${DEFAULTS["frequency-penalty"]})
  --repetition-penalty X  (default ${DEFAULTS["repetition-penalty"]} = off)
  --penalty-decay X       per-token decay of penalty counts (default ${DEFAULTS["penalty-decay"]})
  --mirostat TAU          mirostat v2 target surprise (default off)
  --mirostat-eta ETA      (default ${DEFAULTS["mirostat-eta"]})
  --logit-bias ID:BIAS[,ID:BIAS...]
  --seed N                same seed, same text (default: random)

Other:
  --quiet                 no progress or stats on stderr
  -h, --help              this help
`;

const noDefault = (why: string) =>
  `error: no --model given, and the default model could not be fetched
(${why}).

Download an RWKV checkpoint and the World tokenizer yourself, for example:
  https://huggingface.co/BlinkDL/rwkv-7-world/resolve/main/RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth
  ${WORLD_VOCAB.url}
put them in one folder and run:

  deno run -A cli/generate.ts --model RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth

(--model also takes hf:OWNER/REPO/FILE or an https URL. Any .pth, .safetensors or rwkv.cpp
.bin RWKV-4/5/6/7 model works.)
`;

/** Fetches the default model and the World vocabulary beside it; returns the model path. */
async function defaultModel(quiet: boolean): Promise<string> {
  const path = await resolveModel(DEFAULT_MODEL, { quiet });
  const vocab = `${path.slice(0, path.lastIndexOf("/"))}/${WORLD_VOCAB.name}`;
  try {
    await Deno.stat(vocab);
  } catch {
    await download(WORLD_VOCAB.url, vocab, { quiet, sha256: WORLD_VOCAB.sha256 });
  }
  return path;
}

function num(values: Record<string, unknown>, name: keyof typeof DEFAULTS | string): number {
  const raw = (values[name] as string | undefined) ?? DEFAULTS[name as keyof typeof DEFAULTS];
  return numberFlag(raw, name) as number;
}

function parseBias(s: string | undefined): Record<number, number> | undefined {
  if (!s) return undefined;
  const out: Record<number, number> = {};
  for (const part of s.split(",")) {
    const m = /^\s*(\d+)\s*:\s*(-?[\d.eE+-]+)\s*$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) {
      throw new UsageError(`--logit-bias expects ID:BIAS pairs, got ${JSON.stringify(part)}`);
    }
    out[Number(m[1])] = Number(m[2]);
  }
  return out;
}

/** Runs the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrHelp({
    args: argv,
    allowPositionals: false,
    options: {
      ...MODEL_FLAGS,
      ...SAMPLING_FLAGS,
      "state-in": { type: "string" },
      "state-out": { type: "string" },
      prompt: { type: "string" },
      "prompt-file": { type: "string" },
      "max-tokens": { type: "string" },
      stop: { type: "string", multiple: true },
      "top-k": { type: "string" },
      "min-p": { type: "string" },
      "top-a": { type: "string" },
      "typical-p": { type: "string" },
      "repetition-penalty": { type: "string" },
      "penalty-decay": { type: "string" },
      mirostat: { type: "string" },
      "mirostat-eta": { type: "string" },
      "logit-bias": { type: "string" },
      "json-schema": { type: "string" },
      grammar: { type: "string" },
    },
  }, HELP);
  if (!parsed) return 0;
  const v = parsed.values;
  const sampling = {
    temperature: num(v, "temperature"),
    topP: num(v, "top-p"),
    topK: num(v, "top-k"),
    minP: num(v, "min-p"),
    topA: num(v, "top-a"),
    typicalP: num(v, "typical-p"),
    presencePenalty: num(v, "presence-penalty"),
    frequencyPenalty: num(v, "frequency-penalty"),
    repetitionPenalty: num(v, "repetition-penalty"),
    penaltyDecay: num(v, "penalty-decay"),
    mirostat: v.mirostat !== undefined
      ? { tau: num(v, "mirostat"), eta: num(v, "mirostat-eta") }
      : undefined,
    logitBias: parseBias(v["logit-bias"]),
    seed: v.seed !== undefined ? num(v, "seed") : undefined,
  };
  const maxTokens = numberFlag(v["max-tokens"], "max-tokens", 200, { integer: true, min: 0 });
  const constrained = await readGrammarFlags(v["json-schema"], v.grammar);

  let prompt: string;
  if (v.prompt !== undefined) prompt = v.prompt;
  else if (v["prompt-file"] !== undefined) prompt = await Deno.readTextFile(v["prompt-file"]);
  else if (!Deno.stdin.isTerminal() && v["state-in"] === undefined) {
    prompt = await readAllText(Deno.stdin.readable);
    if (prompt === "") prompt = DRAGON_PROMPT;
  } else prompt = DRAGON_PROMPT;

  const quiet = v.quiet;
  let loaded;
  try {
    loaded = await loadFromFlags(v, () => defaultModel(quiet));
  } catch (e) {
    if (!(e instanceof DownloadError) || v.model !== undefined) throw e;
    console.error(noDefault(e.message));
    return 2;
  }
  const { model, tokenizer } = loaded;
  try {
    const state = v["state-in"] ? await State.load(model.spec, v["state-in"]) : model.createState();
    const promptBar = progressBar("prompt", "count", quiet);
    const abort = new AbortController();
    const onSig = () => abort.abort();
    try {
      Deno.addSignalListener("SIGINT", onSig);
    } catch { /* not supported here */ }
    const enc = new TextEncoder();
    let stats: GenerateStats | undefined;
    try {
      for await (
        const piece of generate(model, tokenizer, prompt, {
          ...sampling,
          ...constrained,
          maxTokens,
          stop: v.stop,
          state,
          signal: abort.signal,
          onPromptProgress: (d, t) => promptBar.update(d, t),
          onStats: (s) => stats = s,
        })
      ) {
        await Deno.stdout.write(enc.encode(piece));
      }
    } finally {
      try {
        Deno.removeSignalListener("SIGINT", onSig);
      } catch { /* not supported here */ }
    }
    await Deno.stdout.write(enc.encode("\n"));
    if (stats && !quiet) {
      console.error(
        `prompt: ${stats.promptTokens} tokens, ${stats.promptTokensPerSecond.toFixed(1)} tok/s; ` +
          `generated: ${stats.generatedTokens} tokens, ${stats.tokensPerSecond.toFixed(2)} tok/s ` +
          `(${stats.stopReason})`,
      );
    }
    if (stats?.complete === false) {
      console.error("warning: the output is incomplete (cut short before the grammar's end)");
    }
    if (v["state-out"]) await state.save(v["state-out"]);
  } finally {
    await model.dispose();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
