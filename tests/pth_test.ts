/**
 * The PyTorch reader on the real fixtures (every tiny-rwkv-*.pth), cross-checked against the
 * SafeTensors fixture and between the zip and legacy files, plus small archives crafted here
 * for what the fixtures do not show: views, deflate, ZIP64, wrappers, every dtype.
 * @module
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { openPth } from "../lib/formats/pth.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { f32ToBf16, f32ToF16 } from "../lib/formats/dtype.ts";
import type { Checkpoint, DType } from "../lib/formats/checkpoint.ts";
import { FormatError } from "../lib/errors.ts";
import { bytesOf, type CraftTensor, legacyFile, makeTorchZip, Pickle } from "./_craft.ts";

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
// Crafted archives (tests/_craft.ts)

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
    const zip = await makeTorchZip([["tiny/data.pkl", pkl], ["tiny/data/0", bytesOf(M)]], opt);
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
  await withFile(legacyFile(main, [["0", 12, bytesOf(M)]]), async (ck) => {
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
    files.push([`archive/data/${i}`, bytesOf(data)]);
  });
  const pkl = new Pickle().stateDict(tensors).done();
  await withFile(await makeTorchZip([["archive/data.pkl", pkl], ...files]), async (ck) => {
    for (const [storage, dtype, data] of kinds) {
      assertEquals(ck.tensors.get(storage)?.dtype, dtype, storage);
      assertEquals(await ck.read(storage), bytesOf(data), storage);
    }
  });
});

Deno.test("pth: wrapped state dicts are unwrapped; other entries become metadata", async () => {
  const w: CraftTensor = { storage: "FloatStorage", key: "0", numel: 2, shape: [2] };
  const data = bytesOf(new Float32Array([1, 2]));
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
    await withFile(await makeTorchZip([["x/data.pkl", pkl], ["x/data/0", data]]), async (ck) => {
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
  await withFile(await makeTorchZip([["a/data.pkl", pkl], ["a/data/k", data]]), async (ck) => {
    assertEquals([...ck.tensors.keys()], ["param", "sub"]);
    assertEquals(await ck.read("sub"), data);
    assertEquals(ck.metadata, { blob: "<2 bytes>", size: [2, 3] });
  });
});
