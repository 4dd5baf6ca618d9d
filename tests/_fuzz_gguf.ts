/**
 * Hostile GGUF files for the loader fuzz suite: lying counts, sizes, offsets, string lengths and
 * types, truncations, huge and deep metadata arrays, contradictions of llama.cpp's RWKV layout.
 * Each must be refused by a typed error naming the file (and the field) within the suite's
 * time and memory bounds; a valid file with every value type must read exactly.
 * @module
 */

import type { FuzzCase } from "./_fuzz.ts";
import { crc32 } from "../lib/formats/_crc32.ts";

const enc = new TextEncoder();

/** Little-endian pieces of a GGUF file, written in order (so a test can lie anywhere). */
class G {
  parts: number[] = [];
  u8(...v: number[]) {
    this.parts.push(...v);
    return this;
  }
  u32(v: number) {
    return this.u8(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
  }
  u64(v: number | bigint) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    return this.u8(...b);
  }
  str(s: string | Uint8Array, lie?: number | bigint) {
    const b = typeof s === "string" ? enc.encode(s) : s;
    this.u64(lie ?? b.length);
    return this.u8(...b);
  }
  f32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.u8(...b);
  }
  /** Pads to a multiple of `n`. */
  pad(n = 32) {
    while (this.parts.length % n) this.parts.push(0);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** A header: magic, version, counts. */
const head = (tensors: number | bigint, kvs: number | bigint, version = 3) =>
  new G().u8(0x47, 0x47, 0x55, 0x46).u32(version).u64(tensors).u64(kvs);

/** A string key-value. */
const kvStr = (g: G, k: string, v: string) => g.str(k).u32(8).str(v);
/** A u32 key-value. */
const kvU32 = (g: G, k: string, v: number) => g.str(k).u32(4).u32(v);

/** A tensor info. */
function info(
  g: G,
  name: string,
  dims: (number | bigint)[],
  type: number,
  offset: number | bigint,
) {
  g.str(name).u32(dims.length);
  for (const d of dims) g.u64(d);
  return g.u32(type).u64(offset);
}

/** A valid file of one F32 tensor `t` = [1, 2, 3, 4] (and `kvs` written by `meta`). */
function oneTensor(meta: (g: G) => number = () => 0, dims = [4], type = 0, offset = 0): Uint8Array {
  const m = new G();
  const n = meta(m);
  const g = head(1, n);
  g.parts.push(...m.parts);
  info(g, "t", dims, type, offset).pad();
  for (const v of [1, 2, 3, 4]) g.f32(v);
  return g.bytes();
}

/** A file whose only key is a list of 2000 tokens, each written by `token`. */
function vocab(token: (g: G, i: number) => void): Uint8Array {
  const g = head(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2000);
  for (let i = 0; i < 2000; i++) token(g, i);
  return g.bytes();
}

const refused = (
  cls: string,
  name: string,
  make: () => Uint8Array,
  error: RegExp,
  extra: Partial<FuzzCase> = {},
): FuzzCase => ({
  cls,
  name,
  ext: "gguf",
  make,
  expect: { error },
  ...extra,
});

/** Every GGUF attack, in two classes: the container, and llama.cpp's RWKV layout. */
export function ggufCases(): FuzzCase[] {
  const C = "gguf container";
  const L = "gguf rwkv layout";
  const cases: FuzzCase[] = [
    refused(C, "big-endian magic", () => {
      const b = oneTensor();
      b.set([0x46, 0x55, 0x47, 0x47], 0);
      return b;
    }, /not a checkpoint|big-endian/),
    refused(C, "version 1", () => {
      const b = oneTensor();
      b[4] = 1;
      return b;
    }, /version 1/),
    refused(C, "tensor_count 2^40", () => head(2 ** 40, 0).bytes(), /tensor_count.*absurd/),
    refused(
      C,
      "tensor_count over limits.tensors",
      () => {
        const g = head(3, 0);
        for (let i = 0; i < 3; i++) info(g, `t${i}`, [1], 0, i * 32);
        return g.pad().u8(...new Uint8Array(96)).bytes();
      },
      /limits\.tensors/,
      { limits: { tensors: 2 } },
    ),
    refused(
      C,
      "metadata_kv_count lies (2^30)",
      () => head(0, 2 ** 30).bytes(),
      /metadata_kv_count.*absurd/,
    ),
    refused(C, "metadata_kv_count one more than present", () => {
      const g = head(0, 2);
      kvU32(g, "a", 1);
      return g.bytes();
    }, /metadata_kv_count: absurd|metadata key #1.*needs bytes/),
    refused(
      C,
      "key length 2^62",
      () => head(0, 1).str("k", 2n ** 62n).u8(...new Uint8Array(16)).bytes(),
      /string length.*absurd/,
    ),
    refused(
      C,
      "string value length past the end",
      () => head(0, 1).str("k").u32(8).str("abc", 1000).bytes(),
      /\bk\b.*(absurd|needs bytes)/,
    ),
    refused(
      C,
      "key not UTF-8",
      () => head(0, 1).str(Uint8Array.of(0xff, 0xfe)).u32(4).u32(1).bytes(),
      /UTF-8/,
    ),
    refused(
      C,
      "unknown value type 13",
      () => head(0, 1).str("k").u32(13).u32(0).bytes(),
      /k: unknown value type 13/,
    ),
    refused(C, "bool of value 2", () => head(0, 1).str("k").u32(7).u8(2).bytes(), /bool/),
    refused(
      C,
      "array of 2^40 u8",
      () => head(0, 1).str("k").u32(9).u32(0).u64(2 ** 40).u8(1, 2, 3).bytes(),
      /array count.*absurd/,
    ),
    refused(
      C,
      "array of 10^8 strings in 40 bytes",
      () => head(0, 1).str("k").u32(9).u32(8).u64(1e8).u8(...new Uint8Array(40)).bytes(),
      /array count.*absurd/,
    ),
    // a vocabulary's strings are decoded when first used (here: when the metadata is printed);
    // their lengths are checked at open
    refused(
      C,
      "vocabulary of 2000 strings, one not UTF-8",
      () => vocab((g, i) => g.str(i === 1500 ? Uint8Array.of(0x61, 0xc3, 0x28) : `t${i}`)),
      /tokenizer\.ggml\.tokens\[1500\]: string is not valid UTF-8/,
    ),
    refused(
      C,
      "vocabulary of 2000 strings, one length past the end",
      () => vocab((g, i) => g.str(`t${i}`, i === 1500 ? 1 << 20 : undefined)),
      /tokenizer\.ggml\.tokens\[1500\].*(absurd|needs bytes)/,
    ),
    refused(
      C,
      "vocabulary of 2000 strings, one length 2^40",
      () => vocab((g, i) => g.str(`t${i}`, i === 1500 ? 2 ** 40 : undefined)),
      /tokenizer\.ggml\.tokens\[1500\] \(string length\).*absurd/,
    ),
    refused(
      C,
      "array of unknown element type",
      () => head(0, 1).str("k").u32(9).u32(77).u64(1).u8(0).bytes(),
      /unknown value type 77/,
    ),
    refused(
      C,
      "metadata array (4 MiB) over limits.headerBytes",
      () => {
        const g = head(0, 1).str("tokenizer.ggml.scores").u32(9).u32(6).u64(1 << 20);
        return Uint8Array.from([...g.parts, ...new Uint8Array(4 << 20)]);
      },
      /limits\.headerBytes/,
      { limits: { headerBytes: 1 << 20 } },
    ),
    refused(C, "arrays nested 100 deep", () => {
      const g = head(0, 1).str("k").u32(9);
      for (let i = 0; i < 100; i++) g.u32(9).u64(1);
      return g.u32(4).u64(1).u32(7).bytes();
    }, /limits\.depth/),
    refused(C, "duplicate key", () => {
      const g = head(0, 2);
      kvU32(g, "a", 1);
      kvU32(g, "a", 2);
      return g.bytes();
    }, /a: metadata key appears twice/),
    refused(
      C,
      "general.alignment 3",
      () => oneTensor((g) => (kvU32(g, "general.alignment", 3), 1)),
      /general\.alignment.*power of two/,
    ),
    refused(
      C,
      "general.alignment as a string",
      () => oneTensor((g) => (kvStr(g, "general.alignment", "32"), 1)),
      /general\.alignment/,
    ),
    refused(C, "5 dimensions", () => oneTensor(undefined, [1, 1, 1, 1, 4]), /t: 5 dimensions/),
    refused(C, "a dimension of 0", () => oneTensor(undefined, [4, 0]), /t: dimension 1 is 0/),
    refused(
      C,
      "dims of 2^40 × 2^40",
      () => oneTensor(undefined, [2 ** 40, 2 ** 40]),
      /t: absurd dims/,
    ),
    refused(
      C,
      "unknown ggml type 99",
      () => oneTensor(undefined, [4], 99),
      /t: unknown ggml type 99/,
    ),
    refused(
      C,
      "Q8_0 rows of 4 values",
      () => oneTensor(undefined, [4], 8),
      /t: rows of 4 values are not whole Q8_0 blocks/,
    ),
    refused(
      C,
      "offset not aligned",
      () => oneTensor(undefined, [4], 0, 4),
      /t: data offset 4 is not a multiple of 32/,
    ),
    refused(
      C,
      "offset past the end",
      () => oneTensor(undefined, [4], 0, 2 ** 20),
      /t: .*(absurd|truncated)/,
    ),
    refused(C, "data truncated", () => oneTensor().slice(0, -4), /t: .*truncated/),
    refused(
      C,
      "header truncated in a tensor info",
      () => oneTensor().slice(0, 30),
      /tensor_count: absurd|needs bytes|truncated/,
    ),
    refused(C, "two tensors share bytes", () => {
      const g = head(2, 0);
      info(g, "a", [8], 0, 0);
      info(g, "b", [8], 0, 0);
      return g.pad().u8(...new Uint8Array(32)).bytes();
    }, /overlaps/),
    refused(C, "duplicate tensor name", () => {
      const g = head(2, 0);
      info(g, "a", [8], 0, 0);
      info(g, "a", [8], 0, 32);
      return g.pad().u8(...new Uint8Array(64)).bytes();
    }, /a: tensor appears twice/),
    {
      cls: C,
      name: "every value type reads exactly",
      ext: "gguf",
      make: () =>
        oneTensor((g) => {
          g.str("u8").u32(0).u8(200);
          g.str("i8").u32(1).u8(0x80);
          g.str("u16").u32(2).u8(0x34, 0x12);
          g.str("i16").u32(3).u8(0xff, 0xff);
          g.str("u32").u32(4).u32(4000000000);
          g.str("i32").u32(5).u32(0xfffffffe);
          g.str("f32").u32(6).f32(0.5);
          g.str("bool").u32(7).u8(1);
          g.str("s").u32(8).str("héllo");
          g.str("u64").u32(10).u64(2 ** 40);
          g.str("i64").u32(11).u64(2n ** 64n - 3n);
          g.str("f64").u32(12).u8(0, 0, 0, 0, 0, 0, 0xf8, 0x3f);
          g.str("strs").u32(9).u32(8).u64(2).str("a").str("b");
          g.str("nested").u32(9).u32(9).u64(1).u32(7).u64(2).u8(1, 0);
          return 14;
        }),
      expect: {
        ok(r) {
          const want = {
            u8: 200,
            i8: -128,
            u16: 0x1234,
            i16: -1,
            u32: 4000000000,
            i32: -2,
            f32: 0.5,
            bool: true,
            s: "héllo",
            u64: 2 ** 40,
            i64: -3,
            f64: 1.5,
            strs: ["a", "b"],
            nested: [[true, false]],
          };
          if (JSON.stringify(r.metadata) !== JSON.stringify(want)) {
            return `metadata ${JSON.stringify(r.metadata)}`;
          }
          if (r.crcs?.t !== crc32(new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer))) {
            return "t does not read [1, 2, 3, 4]";
          }
          return undefined;
        },
      },
    },
  ];
  // llama.cpp's RWKV layout, contradicted
  const rwkv = (kvs: [string, string | number][], tensors: [string, number[], number][]) => () => {
    const g = head(tensors.length, kvs.length);
    for (const [k, v] of kvs) typeof v === "string" ? kvStr(g, k, v) : kvU32(g, k, v);
    let off = 0;
    const sizes: number[] = [];
    for (const [n, dims, type] of tensors) {
      info(g, n, dims, type, off);
      const count = dims.reduce((a, b) => a * b, 1);
      const size = type === 0 ? count * 4 : type === 1 ? count * 2 : (count / 256) * 84;
      sizes.push(size);
      off += Math.ceil(size / 32) * 32;
    }
    g.pad();
    for (const s of sizes) g.u8(...new Uint8Array(Math.ceil(s / 32) * 32));
    return g.bytes();
  };
  const arch: [string, string | number][] = [["general.architecture", "rwkv7"], [
    "rwkv7.wkv.head_size",
    4,
  ]];
  cases.push(
    refused(
      L,
      "unknown tensor name",
      rwkv(arch, [["blk.0.mystery.weight", [8], 0]]),
      /blk\.0\.mystery\.weight: not a tensor of llama\.cpp's rwkv7 layout/,
    ),
    refused(
      L,
      "token_shift_count 1 (a hybrid)",
      rwkv([...arch, ["rwkv7.token_shift_count", 1]], []),
      /rwkv7\.token_shift_count: 1/,
    ),
    refused(
      L,
      "no head size",
      rwkv([["general.architecture", "rwkv7"]], []),
      /rwkv7\.wkv\.head_size: missing/,
    ),
    refused(
      L,
      "head size as a string",
      rwkv([["general.architecture", "rwkv7"], ["rwkv7.wkv.head_size", "64"]], []),
      /rwkv7\.wkv\.head_size: expected a non-negative integer/,
    ),
    refused(
      L,
      "fused lerp of 5 parts in RWKV-7",
      rwkv(arch, [["blk.0.time_mix_lerp_fused.weight", [8, 1, 1, 5], 0]]),
      /time_mix_lerp_fused\.weight: shape \[5,1,1,8\], expected \(6, 1, 1, C\)/,
    ),
    refused(
      L,
      "r_k not whole heads",
      rwkv(arch, [["blk.0.time_mix_r_k.weight", [6], 0]]),
      /r_k\.weight: 6 values are not heads of 4/,
    ),
    refused(
      L,
      "a layer past block_count",
      rwkv([...arch, ["rwkv7.block_count", 1]], [["blk.3.attn_norm.weight", [8], 0]]),
      /blk\.3\.attn_norm\.weight: layer 3 but rwkv7\.block_count is 1/,
    ),
    refused(
      L,
      "a Q2_K matrix (not read)",
      rwkv(arch, [["blk.0.time_mix_key.weight", [256, 2], 10]]),
      /Q2_K is not read/,
    ),
    refused(
      L,
      "low-rank matrix of 1 dimension",
      rwkv(arch, [["blk.0.time_mix_w1.weight", [8], 0]]),
      /time_mix_w1\.weight: expected a matrix/,
    ),
    refused(
      L,
      "embedding_length contradicts token_embd",
      rwkv([...arch, ["rwkv7.embedding_length", 16]], [["token_embd.weight", [8, 4], 0]]),
      /rwkv7\.embedding_length: 16 but token_embd has rows of 8/,
    ),
    refused(
      L,
      "a well-formed file that is no model (loadModel)",
      rwkv(arch, [["token_embd.weight", [8, 4], 0]]),
      /not an RWKV-4\/5\/6\/7 checkpoint|missing/,
      { load: true },
    ),
  );
  return cases;
}
