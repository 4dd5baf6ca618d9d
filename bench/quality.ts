/**
 * The quality table: perplexity of every fixture model on `bench/data/eval.txt` at f32, bf16,
 * q8 and q4 storage (quantized on load; a quantized file gives identical logits), as a Markdown
 * table for the README.
 *
 *   deno run -A bench/quality.ts [--fixtures ../shared/fixtures] [--ctx 512]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModel } from "../lib/load.ts";
import { perplexity } from "../lib/perplexity.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    fixtures: {
      type: "string",
      default: Deno.env.get("RWKV_FIXTURES") ??
        new URL("../../shared/fixtures", import.meta.url).pathname,
    },
    ctx: { type: "string", default: "512" },
  },
});
const text = await Deno.readTextFile(new URL("./data/eval.txt", import.meta.url));
const models = [...Deno.readDirSync(values.fixtures)]
  .map((e) => e.name)
  .filter((n) => /^tiny-rwkv-.*\.(pth|safetensors)$/.test(n))
  .sort();
const tokenizer = await loadTokenizer("bytes");
console.log(`text: ${new TextEncoder().encode(text).length} bytes, ctx ${values.ctx}\n`);
console.log("| model | layers | f32 | bf16 | q8 (Δ) | q4 (Δ) |");
console.log("|---|---|---|---|---|---|");
for (const name of models) {
  const ppl: Record<string, number> = {};
  let layers = 0;
  for (const dtype of ["f32", "bf16", "q8", "q4"] as const) {
    const model = await loadModel(`${values.fixtures}/${name}`, { dtype, threads: 2 });
    layers = model.info.layers;
    ppl[dtype] = (await perplexity(model, tokenizer, text, { ctx: Number(values.ctx) })).perplexity;
    await model.dispose();
  }
  const d = (q: string) => `${ppl[q].toFixed(3)} (${((ppl[q] / ppl.f32 - 1) * 100).toFixed(2)} %)`;
  console.log(
    `| ${name} | ${layers} | ${ppl.f32.toFixed(3)} | ${ppl.bf16.toFixed(3)} | ${d("q8")} | ${
      d("q4")
    } |`,
  );
}
