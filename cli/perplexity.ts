/**
 * Measures a model's perplexity on a text file.
 *
 *   deno run -A cli/perplexity.ts --model MODEL [--tokenizer T] [--ctx N] TEXT_FILE
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { loadModel } from "../lib/load.ts";
import { perplexity } from "../lib/perplexity.ts";
import { progressBar } from "../lib/progress.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";
import { runCli } from "./_main.ts";

const HELP = `Measure perplexity and bits per byte of an RWKV model on a text file.

Usage:
  deno run -A cli/perplexity.ts --model MODEL [options] TEXT_FILE

Options:
  --model PATH            any checkpoint loadModel reads
  --tokenizer PATH|bytes  default: a known tokenizer next to the model, by vocab size
  --ctx N                 tokens per window, each from a fresh state (default 512)
  --dtype auto|f32|bf16|f16|q8|q4   weight storage (default auto)
  --threads N             worker threads (default: cores)
  --engine auto|fast|reference
  --json                  print the result as JSON
  -h, --help              this help
`;

/** Runs the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: "string" },
        tokenizer: { type: "string" },
        ctx: { type: "string", default: "512" },
        dtype: { type: "string", default: "auto" },
        threads: { type: "string" },
        engine: { type: "string", default: "auto" },
        json: { type: "boolean", default: false },
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
  if (!v.model || parsed.positionals.length !== 1) {
    console.error(`error: need --model and one TEXT_FILE\n\n${HELP}`);
    return 2;
  }
  const ctx = Number(v.ctx);
  if (!Number.isInteger(ctx) || ctx < 2) throw new UsageError("--ctx must be a whole number ≥ 2");
  if (!["auto", "f32", "bf16", "f16", "q8", "q4"].includes(v.dtype)) {
    throw new UsageError(`--dtype must be auto, f32, bf16, f16, q8 or q4, not ${v.dtype}`);
  }
  const text = await Deno.readTextFile(parsed.positionals[0]);
  const bar = progressBar("loading");
  const model = await loadModel(v.model, {
    dtype: v.dtype as "auto",
    engine: v.engine as "auto",
    threads: v.threads ? Number(v.threads) : undefined,
    onProgress: (d, t) => bar.update(d, t),
  });
  try {
    bar.finish(`RWKV-${model.info.version}, ${model.info.dtype}, ${model.info.engine}`);
    const tokPath = v.tokenizer ?? await findTokenizerFor(v.model, model.info.vocab);
    if (!tokPath) {
      throw new UsageError(`no tokenizer for vocab ${model.info.vocab}: pass --tokenizer`);
    }
    const tokenizer = await loadTokenizer(tokPath);
    const pbar = progressBar("scoring");
    const r = await perplexity(model, tokenizer, text, {
      ctx,
      onProgress: (d, t) => pbar.update(d, t),
    });
    pbar.finish();
    if (v.json) console.log(JSON.stringify({ model: v.model, dtype: model.info.dtype, ctx, ...r }));
    else {
      console.log(
        `perplexity ${r.perplexity.toFixed(4)}  bits/byte ${r.bitsPerByte.toFixed(4)}  ` +
          `tokens ${r.scoredTokens}  ${r.tokensPerSecond.toFixed(1)} tok/s`,
      );
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
