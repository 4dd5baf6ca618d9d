/**
 * Two `.pth` constructs where the key of a storage or of a tensor is not a plain string, read as
 * torch 1.13 reads them (or refused where torch would hand out uninitialized memory).
 * @module
 */

import type { FuzzCase } from "./_fuzz.ts";
import { f32, legacyFile, Pickle, torchZip } from "./_craft.ts";
import { crc32 } from "../lib/formats/_crc32.ts";

/** A `_rebuild_tensor_v2` of a FloatStorage keyed by the int `key`, shape [n]. */
function intKeyed(p: Pickle, key: number, n: number, legacy: boolean): Pickle {
  p.global("torch._utils", "_rebuild_tensor_v2").op(0x28);
  p.op(0x28).str("storage").global("torch", "FloatStorage").int(key).str("cpu").int(n);
  if (legacy) p.op(0x4e);
  p.op(0x74, 0x51).int(0).ints([n]).ints([1]);
  return p.op(0x89).dict().op(0x74, 0x52);
}

/** `{"a": tensor on storage "0", "b": tensor on storage 0}`. */
function zeroAndStringZero(legacy: boolean): Uint8Array | Promise<Uint8Array> {
  const p = new Pickle().dict().op(0x28).str("a")
    .tensor({ key: "0", numel: 2, shape: [2], legacyView: legacy ? null : undefined });
  intKeyed(p.str("b"), 0, 2, legacy).op(0x75);
  return legacy
    ? legacyFile(p.done(), [["0", 2, f32([1, 2])]])
    : torchZip(p.done(), { "0": f32([1, 2]) });
}

/** A bytes object as protocol 2 pickles it: `_codecs.encode(latin1 text, "latin1")`. */
function bytesKey(p: Pickle, b: Uint8Array): Pickle {
  let text = "";
  for (let i = 0; i < b.length; i += 4096) text += String.fromCharCode(...b.subarray(i, i + 4096));
  return p.global("_codecs", "encode").op(0x28).str(text).str("latin1").op(0x74, 0x52);
}

/** The cases, in the suite's "torch semantics" class. */
export function torchKeyCases(): FuzzCase[] {
  const cls = "torch semantics";
  const mib = 1 << 20;
  const big = new Uint8Array(mib).fill(0x61);
  big.set([0x00, 0x27, 0x5c, 0x0a, 0xff]);
  // Python: repr(big) == b"\x00'\\\n\xff" + "a" * (2**20 - 5) + '"'  (a ' and no ": double quotes)
  const bigName = "b\"\\x00'\\\\\\n\\xff" + "a".repeat(mib - 5) + '"';
  const crcOf = (v: number[]) => crc32(f32(v));
  return [
    {
      cls,
      name: 'legacy storages keyed 0 and "0": the int one is never given data',
      ext: "pth",
      make: () => zeroAndStringZero(true),
      expect: { error: /storage 0: keyed by the int 0/ },
    },
    {
      cls,
      name: 'zip storages keyed 0 and "0": two storages, both data/0',
      ext: "pth",
      make: () => zeroAndStringZero(false),
      expect: {
        ok: (r) =>
          r.crcs?.a === crcOf([1, 2]) && r.crcs?.b === crcOf([1, 2]) ? undefined : "a, b ≠ [1, 2]",
      },
    },
    {
      cls,
      name: "a tensor keyed by 1 MiB of bytes is named by Python's str() of the key",
      ext: "pth",
      make: () => {
        const p = bytesKey(new Pickle().dict().op(0x28), big).tensor({
          key: "0",
          numel: 2,
          shape: [2],
        });
        return torchZip(p.op(0x75).done(), { "0": f32([3, 4]) });
      },
      expect: {
        ok: (r) => {
          const names = Object.keys(r.crcs ?? {});
          if (names.length !== 1) return `${names.length} tensors`;
          if (names[0] !== bigName) {
            return `named ${names[0].slice(0, 40)}… (${names[0].length} chars)`;
          }
          return r.crcs![bigName] === crcOf([3, 4]) ? undefined : "wrong data";
        },
      },
    },
    {
      cls,
      name: "two bytes keys of one length stay two tensors",
      ext: "pth",
      make: () => {
        const p = new Pickle().dict().op(0x28);
        bytesKey(p, Uint8Array.of(1, 2)).tensor({ key: "0", numel: 2, shape: [2] });
        bytesKey(p, Uint8Array.of(3, 4)).tensor({ key: "1", numel: 2, shape: [2] });
        return torchZip(p.op(0x75).done(), { "0": f32([1, 2]), "1": f32([5, 6]) });
      },
      expect: {
        ok: (r) =>
          r.crcs?.["b'\\x01\\x02'"] === crcOf([1, 2]) && r.crcs?.["b'\\x03\\x04'"] === crcOf([5, 6])
            ? undefined
            : `tensors ${JSON.stringify(Object.keys(r.crcs ?? {}))}`,
      },
    },
  ];
}
