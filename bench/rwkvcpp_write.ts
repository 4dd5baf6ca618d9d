/**
 * Writes an rwkv.cpp model file (`.bin`) from any checkpoint we read, as rwkv.cpp's converter
 * would from the `.pth` (see `_rwkvcpp_file.ts`): rwkv.cpp then runs the same weights as ours
 * (bench/rwkvcpp_ab.ts) on a machine without PyTorch. RWKV-4 and RWKV-7.
 *
 *   deno run -A bench/rwkvcpp_write.ts --model /work/models-big/4-430m.safetensors \
 *     --out /tmp/4-430m-FP16.bin [--type FP16|FP32]
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
  },
});
if (!values.model || !values.out || (values.type !== "FP16" && values.type !== "FP32")) {
  console.error("usage: rwkvcpp_write.ts --model CHECKPOINT --out FILE.bin [--type FP16|FP32]");
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
