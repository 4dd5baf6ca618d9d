/**
 * The PyTorch reader on the real fixtures (every tiny-rwkv-*.pth), cross-checked against the
 * SafeTensors fixture and between the zip and legacy files, plus small archives crafted here
 * for what the fixtures do not show: views, deflate, ZIP64, wrappers, every dtype.
 * @module
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "./_fixtures.ts";
import { openPth } from "../lib/formats/pth.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import type { Checkpoint, DType } from "../lib/formats/checkpoint.ts";
import { FormatError } from "../lib/errors.ts";
import { crc32 } from "../lib/formats/_crc32.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures

interface Expect {
  file: string;
  format: "pth" | "pth-legacy";
  dtype: DType;
  layers: number;
  embd: number;
  shapes: Record<string, number[]>;
}

const FIXTURES: Expect[] = [
  {
    file: "tiny-rwkv-4v0.pth",
    format: "pth",
    dtype: "F32",
    layers: 2,
    embd: 128,
    shapes: {
      "blocks.1.ffn.key.weight": [256, 128],
      "blocks.1.ffn.value.weight": [128, 256],
      "blocks.0.att.key.weight": [128, 128],
      "blocks.0.att.time_decay": [128],
      "blocks.0.ln0.weight": [128],
    },
  },
  {
    file: "tiny-rwkv-4v0-legacy-f16.pth",
    format: "pth-legacy",
    dtype: "F16",
    layers: 2,
    embd: 128,
    shapes: { "blocks.1.ffn.key.weight": [256, 128], "blocks.0.att.time_first": [128] },
  },
  {
    file: "tiny-rwkv-5v1-f16.pth",
    format: "pth",
    dtype: "F16",
    layers: 6,
    embd: 64,
    shapes: { "blocks.5.att.time_first": [8], "blocks.0.att.key.weight": [64, 64] },
  },
  {
    file: "tiny-rwkv-5v2-bf16.pth",
    format: "pth",
    dtype: "BF16",
    layers: 6,
    embd: 64,
    shapes: { "blocks.5.att.time_faaaa": [8, 8], "blocks.0.att.gate.weight": [64, 64] },
  },
  {
    file: "tiny-rwkv-6v0-bf16.pth",
    format: "pth",
    dtype: "BF16",
    layers: 3,
    embd: 128,
    shapes: {
      "blocks.2.att.time_faaaa": [16, 8],
      "blocks.0.att.time_maa_w1": [128, 160],
      "blocks.0.att.time_decay": [1, 1, 128],
    },
  },
  {
    file: "tiny-rwkv-7v0-bf16.pth",
    format: "pth",
    dtype: "BF16",
    layers: 6,
    embd: 64,
    shapes: { "blocks.5.att.r_k": [1, 64], "blocks.0.att.w0": [1, 1, 64] },
  },
];

for (const ex of FIXTURES) {
  const path = fixture(ex.file);
  Deno.test({
    name: `pth: ${ex.file} lists ${ex.layers} layers × ${ex.embd} ${ex.dtype} and reads them`,
    ignore: !path,
    fn: async () => {
      const ck = await openPth(path!);
      try {
        assertEquals(ck.format, ex.format);
        assertEquals(ck.path, path);
        assertEquals(ck.metadata, {});
        assertEquals(ck.tensors.get("emb.weight")?.shape, [256, ex.embd]);
        assertEquals(ck.tensors.get("head.weight")?.shape, [256, ex.embd]);
        assertEquals(ck.tensors.get("ln_out.weight")?.shape, [ex.embd]);
        for (const [name, shape] of Object.entries(ex.shapes)) {
          assertEquals(ck.tensors.get(name)?.shape, shape, name);
        }
        const layers = new Set(
          [...ck.tensors.keys()].filter((n) => n.startsWith("blocks.")).map((n) => n.split(".")[1]),
        );
        assertEquals(layers.size, ex.layers);
        for (const t of ck.tensors.values()) {
          assertEquals(t.dtype, ex.dtype, t.name);
          const data = await ck.read(t.name);
          assertEquals(data.length, t.byteLength, t.name);
          assertEquals(
            t.byteLength,
            t.shape.reduce((a, b) => a * b, 1) * (ex.dtype === "F32" ? 4 : 2),
          );
        }
        // into a caller's buffer gives the same bytes
        const emb = ck.tensors.get("emb.weight")!;
        const buf = new Uint8Array(emb.byteLength);
        assert((await ck.read("emb.weight", buf)) === buf);
        assertEquals(buf, await ck.read("emb.weight"));
        await assertRejects(() => ck.read("emb.weight", new Uint8Array(3)), FormatError, "emb");
        await assertRejects(() => ck.read("no.such.tensor"), FormatError, "no.such.tensor");
      } finally {
        ck.close();
      }
      await assertRejects(() => ck.read("emb.weight"), FormatError, "closed");
    },
  });
}

/** A tensor's values as float32, whatever its (float) dtype. */
function floats(bytes: Uint8Array, dtype: DType): Float32Array {
  const b = bytes.slice();
  if (dtype === "F32") return new Float32Array(b.buffer);
  const u16 = new Uint16Array(b.buffer);
  const out = new Float32Array(u16.length);
  const u32 = new Uint32Array(out.buffer);
  if (dtype === "BF16") { for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16; }
  else throw new Error(`floats: ${dtype}`);
  return out;
}

const bf16 = fixture("tiny-rwkv-7v0-bf16.pth");
const st = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "pth: tiny-rwkv-7v0-bf16.pth is the SafeTensors float32 model rounded to bfloat16",
  ignore: !bf16 || !st,
  fn: async () => {
    const a = await openPth(bf16!);
    const b = await openSafetensors(st!);
    try {
      assertEquals([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      for (const [name, t] of a.tensors) {
        const ref = b.tensors.get(name)!;
        assertEquals(t.shape, ref.shape, name);
        assertEquals(ref.dtype, "F32");
        const want = f32ToBf16(floats(await b.read(name), "F32"));
        const got = await a.read(name);
        assertEquals(new Uint16Array(got.slice().buffer), want, name);
      }
      // A known value: the first embedding weight, as float32 and as its bf16 rounding.
      const e32 = floats(await b.read("emb.weight"), "F32");
      const e16 = floats(await a.read("emb.weight"), "BF16");
      assert(Math.abs(e32[0] - e16[0]) <= Math.abs(e32[0]) / 128, `${e32[0]} vs ${e16[0]}`);
    } finally {
      a.close();
      b.close();
    }
  },
});

const zip4 = fixture("tiny-rwkv-4v0.pth");
const legacy4 = fixture("tiny-rwkv-4v0-legacy-f16.pth");
Deno.test({
  name: "pth: the legacy float16 file is the zip float32 RWKV-4 model rounded to float16",
  ignore: !zip4 || !legacy4,
  fn: async () => {
    const a = await openPth(zip4!);
    const b = await openPth(legacy4!);
    try {
      assertEquals([...a.tensors.keys()], [...b.tensors.keys()]);
      for (const [name, t] of a.tensors) {
        assertEquals(b.tensors.get(name)!.shape, t.shape);
        const want = f32ToF16(floats(await a.read(name), "F32"));
        assertEquals(new Uint16Array((await b.read(name)).slice().buffer), want, name);
      }
    } finally {
      a.close();
      b.close();
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Crafted archives: a tiny pickle and zip writer, for tests only.

/** Emits pickle opcodes (protocol 2, as torch.save writes). */
class Pickle {
  bytes: number[] = [0x80, 2];
  #enc = new TextEncoder();
  op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...this.#enc.encode(`${module}\n${name}\n`));
  }
  str(s: string): this {
    const b = this.#enc.encode(s);
    return this.op(0x58, ...u32le(b.length), ...b);
  }
  int(n: number): this {
    return n >= 0 && n < 256 ? this.op(0x4b, n) : this.op(0x4a, ...u32le(n));
  }
  ints(xs: number[]): this {
    this.op(0x28);
    for (const x of xs) this.int(x);
    return this.op(0x74);
  }
  /** `collections.OrderedDict()`, left on the stack. */
  dict(): this {
    return this.global("collections", "OrderedDict").op(0x29, 0x52);
  }
  /** A `_rebuild_tensor_v2` call left on the stack. */
  tensor(t: CraftTensor): this {
    this.global("torch._utils", "_rebuild_tensor_v2").op(0x28);
    this.op(0x28).str("storage").global("torch", t.storage).str(t.key).str("cpu").int(t.numel);
    if (t.view) this.op(0x28).str(`${t.key}v`).int(t.view[0]).int(t.view[1]).op(0x74);
    this.op(0x74, 0x51); // TUPLE, BINPERSID
    this.int(t.offset ?? 0).ints(t.shape).ints(t.stride ?? contiguousStrides(t.shape));
    return this.op(0x89).dict().op(0x74, 0x52); // requires_grad, hooks; TUPLE, REDUCE
  }
  /** `{name: tensor, …}` as an OrderedDict filled by SETITEMS. */
  stateDict(tensors: Record<string, CraftTensor>): this {
    this.dict().op(0x28);
    for (const [name, t] of Object.entries(tensors)) this.str(name).tensor(t);
    return this.op(0x75);
  }
  done(): Uint8Array {
    return new Uint8Array([...this.bytes, 0x2e]);
  }
}

interface CraftTensor {
  storage: string;
  key: string;
  numel: number;
  shape: number[];
  stride?: number[];
  offset?: number;
  /** Legacy view metadata: (offset, size) in elements of the root storage. */
  view?: [number, number];
}

function u32le(n: number): number[] {
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
}

function contiguousStrides(shape: number[]): number[] {
  return shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
}

async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

interface ZipOptions {
  /** Compress entries with deflate. */
  deflate?: boolean;
  /** Write ZIP64 records and extra fields even though the archive is small. */
  zip64?: boolean;
}

/**
 * A zip as torch writes it: local headers padded so the data is 64-byte aligned (so the local
 * extra length differs from the central one), sizes in a data descriptor (flag bit 3).
 */
async function makeZip(files: [string, Uint8Array][], opt: ZipOptions = {}): Promise<Uint8Array> {
  const out: number[] = [];
  const central: number[] = [];
  const u16 = (n: number) => [n & 255, n >> 8];
  const u64 = (n: number) => [...u32le(n), ...u32le(Math.floor(n / 2 ** 32))];
  const enc = new TextEncoder();
  for (const [name, data] of files) {
    const stored = opt.deflate ? await deflateRaw(data) : data;
    const n = enc.encode(name);
    const at = out.length;
    const pad = (64 - ((at + 30 + n.length + 4) % 64)) % 64;
    out.push(...u32le(0x04034b50), ...u16(20), ...u16(8), ...u16(opt.deflate ? 8 : 0));
    out.push(0, 0, 0, 0, ...u32le(0), ...u32le(0), ...u32le(0), ...u16(n.length));
    out.push(...u16(pad + 4), ...n, ...u16(0xcafe), ...u16(pad), ...new Array(pad).fill(0));
    out.push(...stored);
    const crc = crc32(data);
    out.push(...u32le(0x08074b50), ...u32le(crc), ...u32le(stored.length), ...u32le(data.length));
    const big = opt.zip64;
    const extra = big
      ? [...u16(1), ...u16(24), ...u64(data.length), ...u64(stored.length), ...u64(at)]
      : [];
    central.push(...u32le(0x02014b50), ...u16(45), ...u16(45), ...u16(8));
    central.push(...u16(opt.deflate ? 8 : 0), 0, 0, 0, 0, ...u32le(crc));
    central.push(
      ...u32le(big ? 0xffffffff : stored.length),
      ...u32le(big ? 0xffffffff : data.length),
    );
    central.push(...u16(n.length), ...u16(extra.length), ...u16(0), ...u16(0), ...u16(0));
    central.push(...u32le(0), ...u32le(big ? 0xffffffff : at), ...n, ...extra);
  }
  const cdAt = out.length;
  out.push(...central);
  const count = files.length;
  if (opt.zip64) {
    const recAt = out.length;
    out.push(...u32le(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32le(0), ...u32le(0));
    out.push(...u64(count), ...u64(count), ...u64(central.length), ...u64(cdAt));
    out.push(...u32le(0x07064b50), ...u32le(0), ...u64(recAt), ...u32le(1));
  }
  const sat = (n: number, max: number) => (opt.zip64 ? max : n);
  out.push(
    ...u32le(0x06054b50),
    0,
    0,
    0,
    0,
    ...u16(sat(count, 0xffff)),
    ...u16(sat(count, 0xffff)),
  );
  out.push(...u32le(sat(central.length, 0xffffffff)), ...u32le(sat(cdAt, 0xffffffff)), 0, 0);
  return new Uint8Array(out);
}

/** A legacy (pre-1.6) file: magic, protocol, sys info, main pickle, keys, storages. */
function makeLegacy(main: Uint8Array, storages: [string, number, Uint8Array][]): Uint8Array {
  const magic = new Pickle().op(
    0x8a,
    10,
    0x6c,
    0xfc,
    0x9c,
    0x46,
    0xf9,
    0x20,
    0x6a,
    0xa8,
    0x50,
    0x19,
  )
    .done();
  const proto = new Pickle().op(0x4d, 0xe9, 0x03).done();
  const sys = new Pickle().op(0x7d, 0x28).str("protocol_version").op(0x4d, 0xe9, 0x03)
    .str("little_endian").op(0x88).op(0x75).done();
  const keys = new Pickle().op(0x5d, 0x28);
  for (const [k] of storages) keys.str(k);
  const parts: number[] = [...magic, ...proto, ...sys, ...main, ...keys.op(0x65).done()];
  for (const [, count, data] of storages) parts.push(...u32le(count), 0, 0, 0, 0, ...data);
  return new Uint8Array(parts);
}

/** Little-endian bytes of a typed array. */
function le(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

async function withFile<T>(bytes: Uint8Array, fn: (ck: Checkpoint) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir();
  try {
    const p = `${dir}/model.pth`;
    await Deno.writeFile(p, bytes);
    const ck = await openPth(p);
    try {
      return await fn(ck);
    } finally {
      ck.close();
    }
  } finally {
    await cleanup();
  }
}

/** A 3×4 float32 matrix 0..11 in storage "0", and views of it. */
const M = Float32Array.from({ length: 12 }, (_, i) => i);
const VIEWS: Record<string, CraftTensor> = {
  whole: { storage: "FloatStorage", key: "0", numel: 12, shape: [3, 4] },
  // rows 1..2, contiguous, at storage offset 4
  rows: { storage: "FloatStorage", key: "0", numel: 12, shape: [2, 4], offset: 4 },
  // the transpose: non-contiguous
  transposed: { storage: "FloatStorage", key: "0", numel: 12, shape: [4, 3], stride: [1, 4] },
  // column 1: stride 4
  column: { storage: "FloatStorage", key: "0", numel: 12, shape: [3], stride: [4], offset: 1 },
  // a broadcast row (stride 0)
  broadcast: { storage: "FloatStorage", key: "0", numel: 12, shape: [2, 2], stride: [0, 1] },
  scalar: { storage: "FloatStorage", key: "0", numel: 12, shape: [], stride: [], offset: 5 },
  empty: { storage: "FloatStorage", key: "0", numel: 12, shape: [0, 4] },
};
const VIEW_VALUES: Record<string, number[]> = {
  whole: [...M],
  rows: [4, 5, 6, 7, 8, 9, 10, 11],
  transposed: [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11],
  column: [1, 5, 9],
  broadcast: [0, 1, 0, 1],
  scalar: [5],
  empty: [],
};

async function checkViews(ck: Checkpoint): Promise<void> {
  for (const [name, want] of Object.entries(VIEW_VALUES)) {
    const t = ck.tensors.get(name)!;
    assertEquals(t.shape, VIEWS[name].shape, name);
    assertEquals(t.byteLength, want.length * 4, name);
    assertEquals([...new Float32Array((await ck.read(name)).slice().buffer)], want, name);
    const into = new Uint8Array(t.byteLength);
    await ck.read(name, into);
    assertEquals([...new Float32Array(into.buffer)], want, name);
  }
  // Ranged reads (what the weights loader streams large tensors with), interleaved across
  // tensors: every window of one or two values equals that part of the whole tensor.
  for (let i = 0; i < 12; i++) {
    for (const [name, want] of Object.entries(VIEW_VALUES)) {
      if (i >= want.length) continue;
      const n = Math.min(2, want.length - i);
      const got = await ck.readRange!(name, i * 4, new Uint8Array(n * 4));
      assertEquals([...new Float32Array(got.slice().buffer)], want.slice(i, i + n), `${name}@${i}`);
    }
  }
  const t = ck.tensors.get("rows")!;
  await assertRejects(
    () => ck.readRange!("rows", t.byteLength - 4, new Uint8Array(8)),
    FormatError,
    /outside the tensor/,
  );
}

for (const opt of [{}, { deflate: true }, { zip64: true }, { deflate: true, zip64: true }]) {
  Deno.test(`pth: crafted zip ${JSON.stringify(opt)} with views, offsets and strides`, async () => {
    const pkl = new Pickle().stateDict(VIEWS).done();
    const zip = await makeZip([["tiny/data.pkl", pkl], ["tiny/data/0", le(M)]], opt);
    await withFile(zip, async (ck) => {
      assertEquals(ck.format, "pth");
      assertEquals([...ck.tensors.keys()], Object.keys(VIEWS));
      await checkViews(ck);
    });
  });
}

Deno.test("pth: crafted legacy file with views (incl. a legacy storage view)", async () => {
  const tensors: Record<string, CraftTensor> = {
    ...VIEWS,
    // a storage view of elements 6..11, then a tensor at offset 2 in it: elements 8..11
    inView: { storage: "FloatStorage", key: "0", numel: 12, shape: [4], view: [6, 6], offset: 2 },
  };
  const main = new Pickle().stateDict(tensors).done();
  await withFile(makeLegacy(main, [["0", 12, le(M)]]), async (ck) => {
    assertEquals(ck.format, "pth-legacy");
    await checkViews(ck);
    assertEquals([...new Float32Array((await ck.read("inView")).slice().buffer)], [8, 9, 10, 11]);
  });
});

Deno.test("pth: every dtype maps to its DType name", async () => {
  const kinds: [string, DType, ArrayBufferView][] = [
    ["DoubleStorage", "F64", new Float64Array([1.5, -2])],
    ["FloatStorage", "F32", new Float32Array([1.5, -2])],
    ["HalfStorage", "F16", new Uint16Array([0x3c00, 0xc000])],
    ["BFloat16Storage", "BF16", new Uint16Array([0x3f80, 0xc000])],
    ["LongStorage", "I64", new BigInt64Array([1n, -2n])],
    ["IntStorage", "I32", new Int32Array([1, -2])],
    ["ShortStorage", "I16", new Int16Array([1, -2])],
    ["CharStorage", "I8", new Int8Array([1, -2])],
    ["ByteStorage", "U8", new Uint8Array([1, 254])],
    ["BoolStorage", "BOOL", new Uint8Array([1, 0])],
  ];
  const tensors: Record<string, CraftTensor> = {};
  const files: [string, Uint8Array][] = [];
  kinds.forEach(([storage, , data], i) => {
    tensors[storage] = { storage, key: String(i), numel: 2, shape: [2] };
    files.push([`archive/data/${i}`, le(data)]);
  });
  const pkl = new Pickle().stateDict(tensors).done();
  await withFile(await makeZip([["archive/data.pkl", pkl], ...files]), async (ck) => {
    for (const [storage, dtype, data] of kinds) {
      assertEquals(ck.tensors.get(storage)?.dtype, dtype, storage);
      assertEquals(await ck.read(storage), le(data), storage);
    }
  });
});

Deno.test("pth: wrapped state dicts are unwrapped; other entries become metadata", async () => {
  const w: CraftTensor = { storage: "FloatStorage", key: "0", numel: 2, shape: [2] };
  const data = le(new Float32Array([1, 2]));
  for (const wrapper of ["model", "state_dict", "module"]) {
    const p = new Pickle().op(0x7d, 0x28); // EMPTY_DICT, MARK
    p.str("epoch").int(3).str("lr").op(0x47, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
    p.str("name").str("tiny").str("flags").ints([1, 2]).str("none").op(0x4e);
    // nested dict of tensors inside the state dict: flattened with "."
    p.str(wrapper).dict().op(0x28).str("emb.weight").tensor(w);
    p.str("blocks").op(0x7d, 0x28).str("0").op(0x7d).str("w").tensor(w).op(0x73).op(0x75);
    p.str("version").int(7).op(0x75);
    p.str("optimizer").op(0x7d).str("m").tensor(w).op(0x73); // a tensor outside the model
    const pkl = p.op(0x75).done();
    await withFile(await makeZip([["x/data.pkl", pkl], ["x/data/0", data]]), async (ck) => {
      assertEquals([...ck.tensors.keys()], ["emb.weight", "blocks.0.w"], wrapper);
      assertEquals(await ck.read("blocks.0.w"), data);
      assertEquals(ck.metadata, {
        epoch: 3,
        lr: 0.1,
        name: "tiny",
        flags: [1, 2],
        none: null,
        optimizer: { m: "<tensor F32 [2]>" },
        version: 7,
      });
    });
  }
});

Deno.test("pth: parameters, tensor subclasses and bytes (protocol 2) are understood", async () => {
  const w: CraftTensor = { storage: "HalfStorage", key: "k", numel: 1, shape: [1] };
  const p = new Pickle().dict().op(0x28);
  p.str("param").global("torch._utils", "_rebuild_parameter").op(0x28).tensor(w).op(0x88).dict()
    .op(0x74, 0x52);
  p.str("sub").global("torch._tensor", "_rebuild_from_type_v2").op(0x28);
  p.global("torch._utils", "_rebuild_tensor_v2").global("torch.nn.parameter", "Parameter");
  p.op(0x28).op(0x28).str("storage").global("torch", "HalfStorage").str("k").str("cpu").int(1);
  p.op(0x74, 0x51).int(0).ints([1]).ints([1]).op(0x89).dict().op(0x74);
  p.op(0x7d).op(0x74, 0x52); // state {}; TUPLE, REDUCE
  p.str("blob").global("_codecs", "encode").str("\u00ff\u0001").str("latin1").op(0x86, 0x52);
  p.str("size").global("torch", "Size").ints([2, 3]).op(0x85, 0x52);
  const pkl = p.op(0x75).done();
  const data = new Uint8Array([0x00, 0x3c]);
  await withFile(await makeZip([["a/data.pkl", pkl], ["a/data/k", data]]), async (ck) => {
    assertEquals([...ck.tensors.keys()], ["param", "sub"]);
    assertEquals(await ck.read("sub"), data);
    assertEquals(ck.metadata, { blob: "<2 bytes>", size: [2, 3] });
  });
});
