/**
 * Opens any checkpoint we read, telling the container by its first bytes, not its name.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint, OpenCheckpointOptions } from "./checkpoint.ts";
import { GGUF_MAGIC, openGguf } from "./gguf.ts";
import { openPth } from "./pth.ts";
import { openRwkvCpp } from "./rwkvcpp.ts";
import { openSafetensors } from "./safetensors.ts";

/** Which container a file is, from its first bytes. */
export async function sniffFormat(
  path: string,
): Promise<"safetensors" | "pth-zip" | "pth-legacy" | "rwkv.cpp" | "gguf"> {
  const f = await Deno.open(path, { read: true });
  const head = new Uint8Array(16);
  let n = 0;
  try {
    while (n < 16) {
      const r = await f.read(head.subarray(n));
      if (r === null) break;
      n += r;
    }
  } finally {
    f.close();
  }
  if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return "pth-zip";
  }
  if (n >= 4 && new DataView(head.buffer).getUint32(0, true) === 0x67676d66) return "rwkv.cpp";
  if (n >= 4 && new DataView(head.buffer).getUint32(0, true) === GGUF_MAGIC) return "gguf";
  if (n >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return "pth-legacy";
  if (n >= 9 && head[8] === 0x7b) return "safetensors";
  throw new FormatError(
    path,
    undefined,
    "not a checkpoint we can read (expected a PyTorch .pth, a .safetensors, a GGUF or a rwkv.cpp " +
      ".bin file)",
  );
}

/**
 * Opens a `.pth` (zip or legacy), `.safetensors`, GGUF (llama.cpp) or rwkv.cpp `.bin` checkpoint: names,
 * dtypes and shapes at once, tensor bytes on demand. A hostile or corrupt file fails with a
 * `FormatError` naming the file and what is wrong, within the budgets of `options.limits`
 * (see `CheckpointLimits` and `DEFAULT_LIMITS`); raise one for a trusted file that needs more.
 * @example
 * ```ts
 * const ck = await openCheckpoint("RWKV-x070-World-0.1B.pth");
 * console.log(ck.format, ck.tensors.size);
 * ck.close();
 * ```
 */
export async function openCheckpoint(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  const kind = await sniffFormat(path);
  switch (kind) {
    case "safetensors":
      return await openSafetensors(path, options);
    case "pth-zip":
    case "pth-legacy":
      return await openPth(path, options);
    case "rwkv.cpp":
      return await openRwkvCpp(path, options);
    case "gguf":
      return await openGguf(path, options);
  }
}
