/**
 * Measures a model's perplexity on a text file.
 *
 *   deno run -A cli/perplexity.ts --model MODEL [--tokenizer T] [--ctx N] TEXT_FILE
 *
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { perplexity } from "../lib/perplexity.ts";
import { progressBar } from "../lib/progress.ts";
import { flagsOrHelp, loadFromFlags, MODEL_FLAGS, MODEL_HELP, numberFlag } from "./_common.ts";
import { runCli } from "./_main.ts";

const HELP = `Measure perplexity and bits per byte of an RWKV model on a text file.

Usage:
  deno run -A cli/perplexity.ts --model MODEL [options] TEXT_FILE

Options:
${MODEL_HELP}
  --ctx N                 tokens per window, each from a fresh state (default 512)
  --batch N               windows evaluated together in one batched call (default 1)
  --json                  print the result as JSON
`;

/** Runs the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrHelp({
    args: argv,
    allowPositionals: true,
    options: {
      ...MODEL_FLAGS,
      ctx: { type: "string" },
      batch: { type: "string" },
      json: { type: "boolean", default: false },
    },
  }, HELP);
  if (!parsed) return 0;
  const v = parsed.values;
  if (parsed.positionals.length !== 1) {
    throw new UsageError(
      `need one TEXT_FILE, got ${parsed.positionals.length} arguments (see --help)`,
    );
  }
  const ctx = numberFlag(v.ctx, "ctx", 512, { integer: true, min: 2 });
  const batch = numberFlag(v.batch, "batch", 1, { integer: true, min: 1, max: 256 });
  const text = await Deno.readTextFile(parsed.positionals[0]);
  const { model, modelPath, tokenizer } = await loadFromFlags(v);
  try {
    const pbar = progressBar("scoring");
    const r = await perplexity(model, tokenizer, text, {
      ctx,
      batch,
      onProgress: (d, t) => pbar.update(d, t),
    });
    pbar.finish();
    if (v.json) {
      console.log(JSON.stringify({ model: modelPath, dtype: model.info.dtype, ctx, batch, ...r }));
    } else {
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
