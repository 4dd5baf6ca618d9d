/**
 * Merges a LoRA into a base RWKV checkpoint: W' = W + (B · A) · alpha / r.
 *
 *   deno run -A cli/merge_lora.ts --base BASE.pth --lora LORA.pth --alpha 32 --out OUT.safetensors
 *
 * @module
 */

import { flagsOrHelp } from "./_common.ts";
import { mergeLora } from "../convert/lora.ts";
import { UsageError } from "../lib/errors.ts";
import { progressBar } from "../lib/progress.ts";
import { runCli } from "./_main.ts";

const HELP = `Merge LoRA weights into a base RWKV checkpoint.

Usage:
  deno run -A cli/merge_lora.ts --base BASE --lora LORA --alpha ALPHA --out OUT [options]

  --base FILE      the base checkpoint (.pth, .safetensors)
  --lora FILE      LoRA weights: <name>.lora_A (r, in) and <name>.lora_B (out, r) pairs
                   (RWKV-LM-LoRA / RWKV-PEFT naming); other tensors in it replace the base's
  --alpha A        LoRA alpha (the update is scaled by alpha / r), as used in training
  --out FILE       .safetensors (default) or .pth
  --dtype auto|f32|f16|bf16   output float type (default auto: the base's)
  --force          replace OUT if it exists
  --quiet
  -h, --help
`;

/** Runs the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrHelp({
    args: argv,
    options: {
      base: { type: "string" },
      lora: { type: "string" },
      alpha: { type: "string" },
      out: { type: "string" },
      dtype: { type: "string" },
      force: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }, HELP);
  if (!parsed) return 0;
  const v = parsed.values;
  for (const k of ["base", "lora", "alpha", "out"] as const) {
    if (!v[k]) throw new UsageError(`--${k} is required (see --help)`);
  }
  const alpha = Number(v.alpha);
  if (!Number.isFinite(alpha)) throw new UsageError(`--alpha must be a number, not ${v.alpha}`);
  const bar = progressBar("merging", "bytes", v.quiet);
  const report = await mergeLora(v.base!, v.lora!, v.out!, {
    alpha,
    dtype: (v.dtype ?? "auto") as "auto",
    overwrite: v.force,
    onProgress: (d, t, n) => bar.update(d, t, n),
  });
  const ranks = [...new Set(Object.values(report.ranks))].join(", ");
  bar.finish(
    `${report.merged.length} matrices merged (rank ${ranks || "-"}), ` +
      `${report.replaced.length} tensors taken from the LoRA file → ${v.out}`,
  );
  return 0;
}

if (import.meta.main) await runCli(main);
