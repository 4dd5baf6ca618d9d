/**
 * Converts checkpoints without Python.
 *
 *   deno run -A cli/convert.ts IN OUT [--dtype f32|f16|bf16 | --quant q8|q4|bf16|f16|f32] [--force]
 *
 * @module
 */

import { parseArgs } from "node:util";

import { openCheckpoint } from "../lib/formats/open.ts";
import { progressBar } from "../lib/progress.ts";
import { convertToSafetensors } from "../convert/safetensors.ts";
import { type QuantScheme, writeQuantized } from "../convert/quantize.ts";
import { type GgufType, writeGgufModel } from "../convert/gguf.ts";
import { runCli } from "./_main.ts";

const HELP = `Convert an RWKV checkpoint (.pth zip or legacy, .safetensors, GGUF, rwkv.cpp .bin) to
.safetensors, or an RWKV-6/7 one to GGUF (llama.cpp, Ollama).

Usage:
  deno run -A cli/convert.ts IN OUT [options]
  deno run -A cli/convert.ts IN OUT.gguf [--type f16|bf16|q8_0|q4_0] [--tokenizer PATH|bytes]

Options:
  --type f16|bf16|q8_0|q4_0
                         GGUF output (the default when OUT ends in .gguf): the large matrices in
                         this type (default f16), the rest as llama.cpp's converter stores it
  --tokenizer PATH|bytes the vocabulary put in the GGUF (rwkv_vocab_v20230424.txt or "bytes";
                         default: bytes for 256 tokens, else the World file beside IN)
  --dtype f32|f16|bf16   cast every float tensor (default: keep each tensor's own dtype)
  --quant q8|q4|bf16|f16|f32
                         write the compact model file instead (docs/QUANT_FORMAT.md): the large
                         matrices quantized (q8, q4) or cast, loaded later without re-quantizing
  --force                replace OUT if it exists (default: refuse)
  --quiet                no progress bar
  -h, --help             this help

The output is written to a temporary file beside OUT and renamed into place when complete:
a failed conversion leaves nothing behind. Pickles are read by a safe subset: a .pth that
asks for anything but tensors is refused, and nothing in it is executed.
`;

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        dtype: { type: "string" },
        quant: { type: "string" },
        type: { type: "string" },
        tokenizer: { type: "string" },
        force: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = args;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length !== 2) {
    console.error(`error: expected IN and OUT, got ${positionals.length} arguments\n\n${HELP}`);
    return 2;
  }
  const [input, output] = positionals;
  if (values.dtype !== undefined && !["f32", "f16", "bf16"].includes(values.dtype)) {
    console.error(`error: --dtype must be f32, f16 or bf16, not ${values.dtype}`);
    return 2;
  }
  if (values.quant !== undefined && !["q8", "q4", "bf16", "f16", "f32"].includes(values.quant)) {
    console.error(`error: --quant must be q8, q4, bf16, f16 or f32, not ${values.quant}`);
    return 2;
  }
  if (values.quant !== undefined && values.dtype !== undefined) {
    console.error("error: give --dtype or --quant, not both");
    return 2;
  }
  const gguf = values.type !== undefined || output.toLowerCase().endsWith(".gguf");
  if (gguf && (values.quant !== undefined || values.dtype !== undefined)) {
    console.error("error: a GGUF output takes --type, not --dtype or --quant");
    return 2;
  }
  if (gguf && !["f16", "bf16", "q8_0", "q4_0"].includes(values.type ?? "f16")) {
    console.error(`error: --type must be f16, bf16, q8_0 or q4_0, not ${values.type}`);
    return 2;
  }
  if (!gguf && values.tokenizer !== undefined) {
    console.error("error: --tokenizer is for a GGUF output");
    return 2;
  }
  const ck = await openCheckpoint(input);
  try {
    const bar = progressBar(`converting ${input}`, "bytes", values.quiet);
    if (gguf) {
      const type = (values.type ?? "f16") as GgufType;
      await writeGgufModel(ck, output, {
        type,
        tokenizer: values.tokenizer,
        force: values.force,
        onProgress: (done, total, name) => bar.update(done, total, name),
      });
      bar.finish(`wrote ${output} (GGUF, ${type})`);
      return 0;
    }
    if (values.quant !== undefined) {
      await writeQuantized(ck, output, {
        quant: values.quant as QuantScheme,
        force: values.force,
        onProgress: (done, total, name) => bar.update(done, total, name),
      });
      bar.finish(`wrote ${output} (${values.quant})`);
      return 0;
    }
    await convertToSafetensors(ck, output, {
      dtype: values.dtype as "f32" | "f16" | "bf16" | undefined,
      force: values.force,
      onProgress: (done, total, name) => bar.update(done, total, name),
    });
    bar.finish(`wrote ${output} (${ck.tensors.size} tensors)`);
  } finally {
    ck.close();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
