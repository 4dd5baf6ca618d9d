/**
 * The zip format of `torch.save` (1.6+): `data.pkl` and one entry per storage, stored or
 * deflated, under the folder of the archive's first entry.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { DTYPE_SIZE } from "./checkpoint.ts";
import type { RandomAccessFile } from "./file.ts";
import { check, Counter, type Limits, overBudget } from "./_limits.ts";
import { PickleBudget, unpickle } from "./_pickle.ts";
import { checkpoint, describe } from "./_pth_checkpoint.ts";
import { collect, pickleHooks, type StorageRef } from "./_torch_pickle.ts";
import {
  entryDataOffset,
  InflateCache,
  readEntry,
  readZipDirectory,
  type ZipEntry,
} from "./_zip.ts";

/**
 * Opens a torch zip checkpoint (see `openPth`).
 * @example
 * ```ts
 * import { RandomAccessFile } from "./file.ts";
 * import { resolveLimits } from "./_limits.ts";
 * const ck = await openZip(await RandomAccessFile.open("model.pth"), resolveLimits(undefined));
 * ```
 */
export async function openZip(file: RandomAccessFile, limits: Limits): Promise<Checkpoint> {
  const path = file.path;
  const entries = await readZipDirectory(file, limits);
  const byName = new Map<string, ZipEntry>();
  for (const e of entries) {
    // torch's reader would take the last of two same-named entries; no writer makes them.
    if (byName.has(e.name)) throw new FormatError(path, e.name, "two zip entries with this name");
    byName.set(e.name, e);
  }
  // torch reads records under the folder of the archive's first entry: data.pkl must be there,
  // once. (A data.pkl anywhere else would be read by no torch version, so none is read here.)
  const pkls = entries.filter((e) => /^([^/]+\/)?data\.pkl$/.test(e.name));
  if (pkls.length === 0) {
    throw new FormatError(path, "data.pkl", "no data.pkl in the archive: not a torch checkpoint");
  }
  const first = entries[0].name, slash = first.indexOf("/");
  if (slash < 0 || pkls.length === 1 && pkls[0].name !== `${first.slice(0, slash)}/data.pkl`) {
    throw new FormatError(
      path,
      pkls[0].name,
      slash < 0
        ? `the first entry (${first}) is not in a folder: torch reads no such archive`
        : `not in the folder of the first entry (${first}), where torch looks for it`,
    );
  }
  if (pkls.length > 1) {
    throw new FormatError(
      path,
      "data.pkl",
      `${pkls.length} data.pkl entries (${pkls.map((e) => e.name).join(", ")}): which one ` +
        "torch reads depends on its version, so none is read",
    );
  }
  const pkl = pkls[0];
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  // torch ≥ 2.1 records the byte order of the storages; we read little-endian only.
  const order = byName.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readEntry(file, order, 64)).trim();
    if (text !== "little") {
      throw new FormatError(path, order.name, `storages are ${text}-endian; only little is read`);
    }
  }
  check(path, limits, "pickleBytes", pkl.size, `data.pkl of ${pkl.size} bytes`);
  const inflated = new Counter(
    path,
    "inflatedBytes",
    limits.inflatedBytes,
    "bytes inflated from deflated entries",
  );
  if (pkl.method === 8) inflated.spend(pkl.size);
  const pickle = await readEntry(file, pkl, limits.pickleBytes, true);
  const storages = new Map<string, StorageRef>();
  const budget = new PickleBudget(path, limits, pickle.length);
  const { value } = unpickle(
    pickle,
    pickleHooks(path, storages, budget, false),
    path,
    0,
    budget,
  );
  const { tensors: refs, metadata } = collect(value, path, budget);
  // Each storage's entry must hold exactly the bytes the pickle declares: a zip entry whose
  // size lies is caught here, before any read.
  const entryOf = new Map<string, ZipEntry>();
  let deflated = 0;
  for (const s of storages.values()) {
    const name = `${prefix}data/${s.key}`;
    const e = byName.get(name);
    if (!e) throw new FormatError(path, name, "storage entry missing from the archive");
    const need = s.numel * DTYPE_SIZE[s.dtype];
    if (e.size !== need) {
      throw new FormatError(path, e.name, `entry holds ${e.size} bytes, storage needs ${need}`);
    }
    if (e.method !== 0 && e.method !== 8) {
      throw new FormatError(path, e.name, `unsupported zip compression method ${e.method}`);
    }
    if (e.method === 8) deflated += e.size;
    entryOf.set(s.key, e);
  }
  // Deflated storages are inflated once each, on first read, into memory: refuse up front
  // when they cannot all fit the budget.
  if (deflated > limits.inflatedBytes - (pkl.method === 8 ? pkl.size : 0)) {
    throw overBudget(
      path,
      "inflatedBytes",
      limits.inflatedBytes,
      `deflated storages of ${deflated} bytes`,
    );
  }
  const tensors = describe(file, refs, storages, limits);
  const dataStart = new Map<string, number>();
  const cache = new InflateCache(file, inflated);
  return checkpoint(
    file,
    "pth",
    tensors,
    metadata,
    async (s, off, len, into) => {
      const e = entryOf.get(s.key)!;
      if (e.method === 8) return await cache.read(e, off, len, into);
      let start = dataStart.get(e.name);
      if (start === undefined) {
        start = await entryDataOffset(file, e);
        dataStart.set(e.name, start);
      }
      return await file.readAt(start + off, into ?? len, e.name);
    },
    (s) => entryOf.get(s.key)!.method === 0,
    () => cache.clear(),
  );
}
