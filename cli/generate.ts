/**
 * Generates text with an RWKV model, streaming to stdout.
 *
 *   deno run -A cli/generate.ts --model MODEL [--prompt TEXT] [options]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { download, DownloadError, resolveModel } from "../lib/fetch.ts";
import { generate, type GenerateStats } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { State } from "../lib/model/state.ts";
import { loadTimeStateFile } from "../lib/model/time_state.ts";
import { progressBar } from "../lib/progress.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";
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
  dtype: "auto",
  engine: "auto",
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
  --tokenizer PATH|bytes  tokenizer.json (HF), rwkv_vocab_v20230424.txt (World) or "bytes";
                          default: a known tokenizer file next to the model, by vocab size
  --dtype auto|f32|bf16|f16|q8|q4   weight storage in memory (default ${DEFAULTS.dtype})
  --threads N             worker threads (default: cores)
  --engine auto|fast|reference      (default ${DEFAULTS.engine})
  --state FILE            state-tuning file (blocks.N.att.time_state, .pth or .safetensors)
  --state-in FILE         start from a saved state (e.g. a processed prompt)
  --state-out FILE        save the state after generation

Prompt and length:
  --prompt TEXT           default: the dragon prompt (stdin when piped)
  --prompt-file FILE
  --max-tokens N          (default ${DEFAULTS["max-tokens"]})
  --stop TEXT             stop when TEXT appears (repeatable)

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
  const n = Number(raw);
  if (raw === undefined || raw === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} must be a number, not ${JSON.stringify(raw)}`);
  }
  return n;
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

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of Deno.stdin.readable) chunks.push(c);
  const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}

/** Runs the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        tokenizer: { type: "string" },
        dtype: { type: "string" },
        threads: { type: "string" },
        engine: { type: "string" },
        state: { type: "string" },
        "state-in": { type: "string" },
        "state-out": { type: "string" },
        prompt: { type: "string" },
        "prompt-file": { type: "string" },
        "max-tokens": { type: "string" },
        stop: { type: "string", multiple: true },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        "top-k": { type: "string" },
        "min-p": { type: "string" },
        "top-a": { type: "string" },
        "typical-p": { type: "string" },
        "presence-penalty": { type: "string" },
        "frequency-penalty": { type: "string" },
        "repetition-penalty": { type: "string" },
        "penalty-decay": { type: "string" },
        mirostat: { type: "string" },
        "mirostat-eta": { type: "string" },
        "logit-bias": { type: "string" },
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
  const dtype = v.dtype ?? DEFAULTS.dtype;
  if (!["auto", "f32", "bf16", "f16", "q8", "q4"].includes(dtype)) {
    throw new UsageError(`--dtype must be auto, f32, bf16, f16, q8 or q4, not ${dtype}`);
  }
  const engine = v.engine ?? DEFAULTS.engine;
  if (!["auto", "fast", "reference"].includes(engine)) {
    throw new UsageError(`--engine must be auto, fast or reference, not ${engine}`);
  }
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
  const maxTokens = num(v, "max-tokens");
  const threads = v.threads !== undefined ? num(v, "threads") : undefined;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new UsageError(`--max-tokens must be a whole number ≥ 0`);
  }

  let prompt: string;
  if (v.prompt !== undefined) prompt = v.prompt;
  else if (v["prompt-file"] !== undefined) prompt = await Deno.readTextFile(v["prompt-file"]);
  else if (!Deno.stdin.isTerminal() && v["state-in"] === undefined) {
    prompt = await readStdin();
    if (prompt === "") prompt = DRAGON_PROMPT;
  } else prompt = DRAGON_PROMPT;

  const quiet = v.quiet;
  let modelPath: string;
  if (v.model) modelPath = await resolveModel(v.model, { quiet });
  else {
    try {
      modelPath = await defaultModel(quiet);
    } catch (e) {
      if (!(e instanceof DownloadError)) throw e;
      console.error(noDefault(e.message));
      return 2;
    }
  }
  const loadBar = progressBar("loading", "count", quiet);
  const model = await loadModel(modelPath, {
    dtype: dtype as "auto",
    engine: engine as "auto",
    threads,
    onProgress: (d, t, name) => loadBar.update(d, t, name),
  });
  try {
    const i = model.info;
    loadBar.finish(
      `RWKV-${i.version} ${i.layers}×${i.embd}, vocab ${i.vocab}, ${i.dtype}, ${i.engine}`,
    );
    const tokPath = v.tokenizer ?? await findTokenizerFor(modelPath, i.vocab);
    if (!tokPath) {
      throw new UsageError(
        `no tokenizer for vocab ${i.vocab} next to ${modelPath}: pass --tokenizer ` +
          `(tokenizer.json, rwkv_vocab_v20230424.txt or "bytes")`,
      );
    }
    const tokenizer = await loadTokenizer(tokPath);
    if (tokenizer.vocabSize > i.vocab) {
      throw new UsageError(
        `tokenizer ${tokPath} has ${tokenizer.vocabSize} tokens but the model only ${i.vocab}`,
      );
    }
    if (v.state) model.initialState = await loadTimeStateFile(model, v.state);
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
    if (v["state-out"]) await state.save(v["state-out"]);
  } finally {
    await model.dispose();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
