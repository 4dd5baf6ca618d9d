/**
 * Writes one tensor's data for the checkpoint writers: whole or in chunks, zero runs left as
 * holes (a sparse file spends no disk on them), checked against the size its shape needs.
 * @module
 */

import { FormatError } from "../errors.ts";
import { crc32, crc32Zeros } from "./_crc32.ts";
import { writeAll } from "./file.ts";
import type { TensorToWrite } from "./checkpoint.ts";

/** Zero runs shorter than this are written as bytes: a hole smaller than a page saves nothing. */
const MIN_HOLE = 1 << 16;

/**
 * Writes `t`'s data at the file's position (which must be `at`) and returns its CRC-32 when
 * `crc` is asked (else 0). A number among the chunks stands for that many zero bytes: skipped
 * by a seek (the caller extends the file to its final length), their CRC computed without them.
 */
export async function emitTensor(
  file: Deno.FsFile,
  path: string,
  t: TensorToWrite,
  at: number,
  size: number,
  crc = false,
): Promise<number> {
  const produced = await t.data();
  let done = 0, sum = 0;
  const zeros = new Uint8Array(Math.min(MIN_HOLE, size));
  const put = async (chunk: Uint8Array | number) => {
    const n = typeof chunk === "number" ? chunk : chunk.length;
    if (!Number.isSafeInteger(n) || n < 0 || done + n > size) {
      throw new FormatError(path, t.name, `data has more than the ${size} bytes its shape needs`);
    }
    if (typeof chunk !== "number") {
      await writeAll(file, chunk);
      if (crc) sum = crc32(chunk, sum);
    } else if (n < MIN_HOLE) {
      await writeAll(file, zeros.subarray(0, n));
      if (crc) sum = crc32Zeros(n, sum);
    } else {
      await file.seek(at + done + n, Deno.SeekMode.Start);
      if (crc) sum = crc32Zeros(n, sum);
    }
    done += n;
  };
  if (produced instanceof Uint8Array || typeof produced === "number") await put(produced);
  else for await (const chunk of produced) await put(chunk);
  if (done !== size) {
    throw new FormatError(path, t.name, `data has ${done} bytes, shape needs ${size}`);
  }
  return sum;
}
