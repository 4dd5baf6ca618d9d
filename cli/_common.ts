/**
 * What every CLI that runs a model shares, so flags are parsed and validated once: the model
 * flags (`--model`, `--tokenizer`, `--dtype`, `--threads`, `--backend`, `--state`; `--engine` and
 * `--device` as its deprecated aliases),
 * number flags, and the loader (resolve `hf:`/URL/path → load with validated options → find the
 * tokenizer → apply a state-tuning file).
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { BACKENDS } from "../lib/backend/mod.ts";
import { UsageError } from "../lib/errors.ts";
import { resolveModel } from "../lib/fetch.ts";
import { loadModel, type LoadModelOptions, validateLoadOptions } from "../lib/load.ts";
import type { Model } from "../lib/model/model.ts";
import { loadTimeStateFile } from "../lib/model/time_state.ts";
import { progressBar } from "../lib/progress.ts";
import { findTokenizerFor, loadTokenizer, type Tokenizer } from "../lib/tokenizer/mod.ts";
import { isGgufFile, loadGgufTokenizer } from "../lib/tokenizer/gguf.ts";
import { type ChatTemplate, namedTemplate, WORLD_STOPS } from "../lib/server/template.ts";

/** The flags of {@link loadFromFlags}, for a CLI's `parseArgs` options. */
export const MODEL_FLAGS = {
  model: { type: "string" },
  tokenizer: { type: "string" },
  dtype: { type: "string" },
  threads: { type: "string" },
  backend: { type: "string" },
  engine: { type: "string" },
  device: { type: "string" },
  state: { type: "string" },
  "huge-pages": { type: "string" },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** Help lines of `--backend` and its deprecated aliases. */
export const BACKEND_HELP = `  --backend auto|wasm|reference|webgpu
                          (default auto: $RWKV_BACKEND if set, else webgpu on a
                          hardware GPU, else wasm)
${Object.entries(BACKENDS).map(([name, b]) => `${" ".repeat(26)}${name}: ${b.about}`).join("\n")}
  --engine, --device      deprecated: --engine fast|reference = --backend wasm|reference,
                          --device webgpu|cpu = --backend webgpu|wasm`;

/** Help lines of the model flags after `--model`: tokenizer, storage, threads, backend, state. */
export const LOAD_HELP =
  `  --tokenizer PATH|bytes  tokenizer.json (HF), rwkv_vocab_v20230424.txt (World) or "bytes";
                          default: a known tokenizer file next to the model, by vocab size
  --dtype auto|f32|bf16|f16|q8|q4   weight storage in memory (default auto)
  --threads N             worker threads (default: cores)
${BACKEND_HELP}
  --state FILE            state-tuning file (blocks.N.att.time_state, .pth or .safetensors)
  --huge-pages on|off     2 MiB pages for the weights on Linux (needs -A or --allow-ffi):
                          decoding faster, the load maybe seconds longer (default: on in
                          chat and serve, which load once and run long; off elsewhere)`;

/** The sampling flags the chat and generate CLIs share (each adds its own). */
export const SAMPLING_FLAGS = {
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "presence-penalty": { type: "string" },
  "frequency-penalty": { type: "string" },
  seed: { type: "string" },
} as const;

/** Help lines of {@link MODEL_FLAGS}. */
export const MODEL_HELP = `  --model PATH|URL|hf:OWNER/REPO/FILE
                          .pth, .safetensors, .gguf, rwkv.cpp .bin or quantized .safetensors;
                          URLs are downloaded once into the cache ($RWKV_CACHE or
                          ~/.cache/rwkv-deno)
${LOAD_HELP}
  --quiet                 no progress on stderr
  -h, --help              this help`;

/**
 * `parseArgs` whose errors (unknown flag, missing value, stray argument) are a UsageError.
 */
export function parseFlags<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see --help)`);
  }
}

/**
 * A CLI's flags parsed (a UsageError on a bad one), or undefined when `--help` was given: the
 * help is then printed and the CLI returns 0.
 * @example
 * ```ts
 * const HELP = "Usage: deno run -A cli/mine.ts --model MODEL";
 * export function main(argv: string[]): number {
 *   const parsed = flagsOrHelp({ args: argv, options: { ...MODEL_FLAGS } }, HELP);
 *   if (!parsed) return 0;
 *   console.log(parsed.values.model);
 *   return 0;
 * }
 * ```
 */
export function flagsOrHelp<T extends ParseArgsConfig>(
  config: T,
  help: string,
): ReturnType<typeof parseArgs<T>> | undefined {
  const parsed = parseFlags(config);
  if ((parsed.values as { help?: unknown }).help) {
    console.log(help);
    return undefined;
  }
  return parsed;
}

/** Limits of {@link numberFlag}. */
export interface NumberFlagOptions {
  /** Must be a whole number. */
  integer?: boolean;
  /** Smallest allowed value. */
  min?: number;
  /** Largest allowed value. */
  max?: number;
}

/** The number a flag gives, `def` when absent; a UsageError naming `--name` when not valid. */
export function numberFlag(
  raw: string | undefined,
  name: string,
  def: number,
  limits?: NumberFlagOptions,
): number;
/** The number a flag gives, or undefined when absent. */
export function numberFlag(
  raw: string | undefined,
  name: string,
  def?: number,
  limits?: NumberFlagOptions,
): number | undefined;
export function numberFlag(
  raw: string | undefined,
  name: string,
  def?: number,
  limits: NumberFlagOptions = {},
): number | undefined {
  if (raw === undefined) return def;
  const n = Number(raw);
  const what = limits.integer ? "a whole number" : "a number";
  const range = limits.min !== undefined && limits.max !== undefined
    ? ` from ${limits.min} to ${limits.max}`
    : limits.min !== undefined
    ? ` ≥ ${limits.min}`
    : limits.max !== undefined
    ? ` ≤ ${limits.max}`
    : "";
  if (
    raw.trim() === "" || !Number.isFinite(n) || (limits.integer && !Number.isInteger(n)) ||
    (limits.min !== undefined && n < limits.min) || (limits.max !== undefined && n > limits.max)
  ) {
    throw new UsageError(`--${name} must be ${what}${range}, not ${JSON.stringify(raw)}`);
  }
  return n;
}

/** The values of {@link MODEL_FLAGS} as parsed. */
export interface ModelFlagValues {
  model?: string;
  tokenizer?: string;
  dtype?: string;
  threads?: string;
  backend?: string;
  engine?: string;
  device?: string;
  state?: string;
  "huge-pages"?: string;
  quiet?: boolean;
}

/** A loaded model with its tokenizer, as {@link loadFromFlags} returns it. */
export interface LoadedModel {
  /** The running model (dispose it). */
  model: Model;
  /** Local path of the model (downloaded first when given as `hf:` or a URL). */
  modelPath: string;
  /** The tokenizer. */
  tokenizer: Tokenizer;
  /** Where the tokenizer came from (`bytes` for the byte-level one). */
  tokenizerPath: string;
  /**
   * The chat format the model file names (a GGUF's `tokenizer.chat_template`, when it is one we
   * know) and its stop strings (the defaults plus the text of its end-of-turn token).
   */
  chat?: { template?: ChatTemplate; stops: string[] };
}

/**
 * An `on|off` flag's value (undefined when absent); a UsageError naming it otherwise.
 * @example
 * ```ts
 * import { onOff } from "./_common.ts";
 * console.log(onOff("on", "huge-pages"), onOff(undefined, "huge-pages")); // true undefined
 * ```
 */
export function onOff(raw: string | undefined, name: string): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw === "on" || raw === "off") return raw === "on";
  throw new UsageError(`--${name} must be on or off, not ${JSON.stringify(raw)}`);
}

/** Loading options from the model flags, validated (a UsageError naming the flag). */
export function loadOptionsFromFlags(v: ModelFlagValues): LoadModelOptions {
  const options: LoadModelOptions = {
    dtype: v.dtype as LoadModelOptions["dtype"],
    backend: v.backend as LoadModelOptions["backend"],
    engine: v.engine as LoadModelOptions["engine"],
    device: v.device as LoadModelOptions["device"],
    threads: numberFlag(v.threads, "threads", undefined, { integer: true, min: 1, max: 64 }),
    hugePages: onOff(v["huge-pages"], "huge-pages"),
  };
  try {
    validateLoadOptions(options);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`--${e.message.replace(/^invalid /, "")}`);
    throw e;
  }
  return options;
}

/**
 * Resolves `--model` (or `fallback()` when it is absent), loads it with the flags' options,
 * finds and loads the tokenizer (`--tokenizer`, else a known file next to the model), checks it
 * fits, and applies `--state`. Everything is validated before the model loads; on a later
 * failure the model is disposed.
 */
export async function loadFromFlags(
  v: ModelFlagValues,
  fallback?: () => Promise<string>,
): Promise<LoadedModel> {
  const options = loadOptionsFromFlags(v);
  const quiet = v.quiet ?? false;
  let modelPath: string;
  if (v.model !== undefined) modelPath = await resolveModel(v.model, { quiet });
  else if (fallback) modelPath = await fallback();
  else throw new UsageError("--model is required (see --help)");
  const bar = progressBar("loading", "count", quiet);
  const model = await loadModel(modelPath, {
    ...options,
    onProgress: (d, t, name) => bar.update(d, t, name),
  });
  try {
    const i = model.info;
    bar.finish(
      `RWKV-${i.version} ${i.layers}×${i.embd}, vocab ${i.vocab}, ${i.dtype}, ${i.engine}`,
    );
    // A GGUF file carries its tokenizer, chat template and end-of-turn token.
    const inFile = v.tokenizer === undefined && await isGgufFile(modelPath)
      ? await loadGgufTokenizer(modelPath).catch(() => undefined)
      : undefined;
    const tokenizerPath = v.tokenizer ??
      (inFile ? modelPath : await findTokenizerFor(modelPath, i.vocab));
    if (!tokenizerPath) {
      throw new UsageError(
        `no tokenizer for vocab ${i.vocab} next to ${modelPath}: pass --tokenizer ` +
          `(tokenizer.json, rwkv_vocab_v20230424.txt or "bytes")`,
      );
    }
    const tokenizer = inFile?.tokenizer ?? await loadTokenizer(tokenizerPath);
    if (tokenizer.vocabSize > i.vocab) {
      throw new UsageError(
        `tokenizer ${tokenizerPath} has ${tokenizer.vocabSize} tokens but the model only ${i.vocab}`,
      );
    }
    if (v.state !== undefined) model.initialState = await loadTimeStateFile(model, v.state);
    let chat: LoadedModel["chat"];
    if (inFile) {
      const eot = inFile.eotToken !== undefined ? tokenizer.decode([inFile.eotToken]) : "";
      const template = namedTemplate(inFile.chatTemplate);
      if (inFile.chatTemplate !== undefined && !template) {
        // a Jinja template is not run: say which format is used instead
        console.error(
          `${modelPath}: its chat template is not one we know (Jinja is not run): chat uses ` +
            `the RWKV World format (User: …, Assistant: …); --template FILE sets another (serve)`,
        );
      }
      chat = {
        template,
        stops: eot && !WORLD_STOPS.includes(eot) ? [...WORLD_STOPS, eot] : [...WORLD_STOPS],
      };
    }
    return { model, modelPath, tokenizer, tokenizerPath, chat };
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/** Reads a whole byte stream (stdin) as UTF-8 text. */
export async function readAllText(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  return text;
}
