/**
 * PyTorch checkpoints: the zip format of `torch.save` (1.6+) and the legacy format before it,
 * read through a pickle VM with a fixed allow-list of globals, so an untrusted file can never
 * run code. Tensors become byte ranges of their storages, read on demand.
 *
 * What comes out:
 * - a state dict wrapped as `{"state_dict": …}`, `{"model": …}` or `{"module": …}` is
 *   unwrapped (up to three levels); the wrapper's other entries go to `metadata`;
 * - nested dicts that hold tensors are flattened with "." (`{"a": {"b": t}}` → `a.b`), which is
 *   how torch names nested modules anyway;
 * - every non-tensor value becomes a plain JSON-able value in `metadata` (tensors inside it,
 *   e.g. optimizer state, are shown as `"<tensor F32 [2, 3]>"`).
 * @module
 */

import type { Checkpoint, OpenCheckpointOptions } from "./checkpoint.ts";
import { FormatError } from "../errors.ts";
import { RandomAccessFile } from "./file.ts";
import { resolveLimits } from "./_limits.ts";
import { openLegacy } from "./_pth_legacy.ts";
import { wrap } from "./_pth_checkpoint.ts";
import { openZip } from "./_pth_zip.ts";

/**
 * Opens a PyTorch checkpoint, zip (`format: "pth"`) or legacy pre-1.6 (`"pth-legacy"`).
 * Tensors are listed at once and read on demand; only the bytes a tensor needs are read.
 * Every problem with the file is a {@link FormatError} naming the file and the field, entry
 * or tensor; a pickle that asks for anything but tensor-building globals is an
 * `UnsafePickleError`, raised before anything else happens. Every budget (see
 * `CheckpointLimits`) is counted as the work happens; `options.limits` raises one.
 * @example
 * ```ts
 * const ck = await openPth("RWKV-4-Pile-169M.pth");
 * console.log(ck.tensors.get("emb.weight")); // { dtype: "BF16", shape: [50277, 768], … }
 * const bytes = await ck.read("emb.weight");
 * ck.close();
 * ```
 */
export async function openPth(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  const limits = resolveLimits(options.limits);
  let file: RandomAccessFile | undefined;
  try {
    file = await RandomAccessFile.open(path);
    const head = await file.readAt(0, Math.min(4, file.size), "header");
    if (head[0] === 0x50 && head[1] === 0x4b) return await openZip(file, limits);
    if (head[0] === 0x80) return await openLegacy(file, limits);
    throw new FormatError(path, "header", "neither a torch zip nor a legacy torch pickle");
  } catch (e) {
    file?.close();
    wrap(path, e);
  }
}
