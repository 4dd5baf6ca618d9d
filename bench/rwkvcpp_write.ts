/**
 * Writes an rwkv.cpp model file (`.bin`) from any checkpoint we read, as rwkv.cpp's converter
 * would from the `.pth` (see `_rwkvcpp_file.ts`): rwkv.cpp then runs the same weights as ours
 * (bench/rwkvcpp_ab.ts) on a machine without PyTorch. RWKV-4 and RWKV-7.
 *
 *   deno run -A bench/rwkvcpp_write.ts --model /work/models-big/4-430m.safetensors \
 *     --out /tmp/4-430m-FP16.bin [--type FP16|FP32]
 *
 * `--quantize Q8_0 --lib librwkv.so` then has rwkv.cpp's own quantizer
 * (`rwkv_quantize_model_file`, through `Deno.dlopen`) turn that file into `OUT` with `-Q8_0`
 * before `.bin` (any type it names: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
 * @module
 */

import { parseArgs } from "node:util";
import { openCheckpoint } from "../lib/formats/open.ts";
import { writeRwkvCpp } from "./_rwkvcpp_file.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    out: { type: "string" },
    type: { type: "string", default: "FP16" },
    quantize: { type: "string" },
    lib: { type: "string" },
  },
});
if (
  !values.model || !values.out || (values.type !== "FP16" && values.type !== "FP32") ||
  (values.quantize && !values.lib)
) {
  console.error(
    "usage: rwkvcpp_write.ts --model CHECKPOINT --out FILE.bin [--type FP16|FP32] " +
      "[--quantize Q8_0 --lib librwkv.so]",
  );
  Deno.exit(2);
}
const ck = await openCheckpoint(values.model);
try {
  const { tensors, bytes } = await writeRwkvCpp(ck, values.out, values.type, (n, b) => {
    if (n % 50 === 0) console.error(`${n} tensors, ${(b / 2 ** 20).toFixed(0)} MiB`);
  });
  console.log(
    `${values.out}: ${tensors} tensors, ${(bytes / 2 ** 20).toFixed(1)} MiB, ${values.type}`,
  );
} catch (e) {
  console.error(`rwkvcpp_write: ${(e as Error).message}`);
  Deno.exit(2);
} finally {
  ck.close();
}
if (values.quantize) {
  const lib = Deno.dlopen(values.lib!, {
    rwkv_quantize_model_file: { parameters: ["buffer", "buffer", "buffer"], result: "bool" },
  });
  const out = values.out.replace(/(\.bin)?$/, `-${values.quantize}.bin`);
  const c = (s: string) => new TextEncoder().encode(s + "\0");
  const ok = lib.symbols.rwkv_quantize_model_file(c(values.out), c(out), c(values.quantize));
  lib.close();
  if (!ok) {
    console.error(`rwkvcpp_write: rwkv.cpp could not quantize ${values.out} to ${values.quantize}`);
    Deno.exit(2);
  }
  console.log(`${out}: ${values.quantize} (rwkv.cpp's quantizer)`);
}
