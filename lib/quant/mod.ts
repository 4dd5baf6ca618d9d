/**
 * The compact quantized model file (`rwkv-deno-quant`, docs/QUANT_FORMAT.md), all of it in one
 * place: the block math (`quantizeQ8`, `quantizeQ4`, their inverses), the format's name,
 * versions and reader validation (`quantizedMatrices`), and the writer (`writeQuantized`).
 *
 * @example
 * ```ts
 * import { quantizedMatrices, writeQuantized } from "./mod.ts";
 * import { openCheckpoint } from "../formats/open.ts";
 *
 * const src = await openCheckpoint("../shared/fixtures/tiny-rwkv-4v0.pth");
 * const out = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeQuantized(src, out, { quant: "q4", force: true });
 * src.close();
 * const ck = await openCheckpoint(out);
 * console.log(quantizedMatrices(ck).get("head.weight")); // { quant: "q4", rows: 256, cols: 128, … }
 * ck.close();
 * await Deno.remove(out);
 * ```
 * @module
 */

export { dequantizeQ4, dequantizeQ8, QBLOCK, quantizeQ4, quantizeQ8, roundScale } from "./block.ts";
export {
  isLargeMatrix,
  isQuantizable,
  QUANT_FORMAT,
  QUANT_FORMAT_VERSION,
  quantizedMatrices,
  type QuantizedMatrix,
  scaleDtype,
} from "./format.ts";
export { type QuantScheme, writeQuantized, type WriteQuantizedOptions } from "./write.ts";
