/**
 * The legacy torch format (before 1.6): pickles back to back, then the storages' raw data.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { DTYPE_SIZE } from "./checkpoint.ts";
import type { RandomAccessFile } from "./file.ts";
import { type Limits, overBudget } from "./_limits.ts";
import { isTuple, PickleBudget, type PickleHooks, PyDict, unpickle } from "./_pickle.ts";
import { checkpoint, describe } from "./_pth_checkpoint.ts";
import { collect, pickleHooks, storageId, type StorageRef } from "./_torch_pickle.ts";

/** Torch's magic number opening a legacy file, and the protocol version after it. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * Legacy (pre-1.6) format: pickles back to back (magic number, protocol version, sys info,
 * the object, the storage keys), then for each key an 8-byte element count and the raw data.
 */
export async function openLegacy(file: RandomAccessFile, limits: Limits): Promise<Checkpoint> {
  const path = file.path;
  const storages = new Map<string, StorageRef>();
  const noGlobals: PickleHooks = {
    findGlobal: () => undefined,
    call: () => undefined,
    persistentLoad: () => {
      throw new FormatError(path, "pickle", "persistent id outside the main pickle");
    },
  };
  const parse = (bytes: Uint8Array) => {
    storages.clear();
    const pb = new PickleBudget(path, limits, bytes.length);
    const magic = unpickle(bytes, noGlobals, path, 0, pb);
    if (magic.value !== LEGACY_MAGIC) {
      throw new FormatError(path, "magic number", "not a PyTorch checkpoint");
    }
    const proto = unpickle(bytes, noGlobals, path, magic.end, pb);
    if (proto.value !== LEGACY_PROTOCOL) {
      throw new FormatError(path, "protocol version", `${proto.value}, expected 1001`);
    }
    const sys = unpickle(bytes, noGlobals, path, proto.end, pb);
    if (!(sys.value instanceof PyDict) || sys.value.get("little_endian") !== true) {
      throw new FormatError(path, "sys info", "not saved on a little-endian machine");
    }
    const main = unpickle(bytes, pickleHooks(path, storages, pb, true), path, sys.end, pb);
    const keys = unpickle(bytes, noGlobals, path, main.end, pb);
    return { main: main.value, keys: keys.value, dataStart: keys.end, budget: pb };
  };
  // Read a prefix and grow it only while the pickles run past it.
  let prefixLen = Math.min(file.size, limits.pickleBytes, 1 << 20);
  let parsed: ReturnType<typeof parse>;
  for (;;) {
    try {
      parsed = parse(await file.readAt(0, prefixLen, "pickle"));
      break;
    } catch (e) {
      const truncated = e instanceof FormatError && /truncated/.test(e.message);
      if (!truncated) throw e;
      if (prefixLen >= file.size) throw e;
      if (prefixLen >= limits.pickleBytes) {
        throw overBudget(path, "pickleBytes", limits.pickleBytes, "the legacy format's pickles");
      }
      prefixLen = Math.min(file.size, limits.pickleBytes, prefixLen * 4);
    }
  }
  if (!Array.isArray(parsed.keys) || isTuple(parsed.keys)) {
    throw new FormatError(path, "storage keys", "not a list");
  }
  // Walk the storages in the listed order: each is its element count, then its data.
  const offsets = new Map<string, number>();
  let pos = parsed.dataStart;
  for (const k of parsed.keys as unknown[]) {
    if (typeof k !== "string") throw new FormatError(path, "storage keys", "a key is not a string");
    const key = k;
    const s = storages.get(storageId(key));
    if (!s) throw new FormatError(path, `storage ${key}`, "listed but never used");
    if (offsets.has(key)) throw new FormatError(path, `storage ${key}`, "listed twice");
    const head = await file.readAt(pos, 8, `storage ${key} size`);
    const count = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (count !== BigInt(s.numel)) {
      throw new FormatError(
        path,
        `storage ${key}`,
        `file holds ${count} elements, pickle declares ${s.numel}`,
      );
    }
    const len = s.numel * DTYPE_SIZE[s.dtype];
    if (pos + 8 + len > file.size) {
      throw new FormatError(
        path,
        `storage ${key}`,
        "data extends past the end of the file (truncated?)",
      );
    }
    offsets.set(key, pos + 8);
    pos += 8 + len;
  }
  for (const [id, s] of storages) {
    if (id !== storageId(s.key)) {
      // torch fills only the storages whose (string) keys the file lists: this one would hold
      // whatever memory it was given.
      throw new FormatError(
        path,
        `storage ${s.key}`,
        "keyed by the int " + s.key + ", which a legacy file never gives data (torch would " +
          "leave it uninitialized)",
      );
    }
    if (!offsets.has(s.key)) throw new FormatError(path, `storage ${s.key}`, "data missing");
  }
  const { tensors: refs, metadata } = collect(parsed.main, path, parsed.budget);
  const tensors = describe(file, refs, storages, limits);
  return checkpoint(file, "pth-legacy", tensors, metadata, (s, off, len, into) => {
    const start = offsets.get(s.key)! + off;
    return file.readAt(start, into ?? len, s.key);
  }, () => true);
}
