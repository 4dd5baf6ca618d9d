/**
 * The quantized file writer, kept at its old path: it lives in `lib/quant/write.ts` with the
 * rest of the format.
 *
 * @example
 * ```ts
 * import { writeQuantized } from "./quantize.ts";
 * console.log(typeof writeQuantized); // "function"
 * ```
 * @module
 */

export {
  type QuantScheme,
  writeQuantized,
  type WriteQuantizedOptions,
} from "../lib/quant/write.ts";
