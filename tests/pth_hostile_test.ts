/**
 * The PyTorch reader against hostile and damaged files: code-running pickles, truncation, byte
 * flips, lying zip sizes, pickles built to exhaust time or memory. Every outcome must be a
 * clean open or a typed error (RwkvError), with nothing executed. (How long each takes is printed,
 * not asserted: tests hold no wall-clock limits; the VM's own limits on work bound them.)
 * @module
 */

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { openPth } from "../lib/formats/pth.ts";
import { FormatError, RwkvError, UnsafePickleError } from "../lib/errors.ts";
import { crc32 } from "../lib/formats/_crc32.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import {
  deflateRaw,
  deflateZeros,
  f32,
  globalOp,
  latin1,
  LEGACY_MAGIC,
  legacyFile,
  makeZip,
  Pickle as P,
  pickle,
  rng,
  u32,
} from "./_craft.ts";

/** Opens `path` and reads every tensor; returns "ok" or the (typed) error. Fails on anything else. */
async function openAndReadAll(path: string, what: string): Promise<"ok" | RwkvError> {
  const t0 = performance.now();
  let outcome: "ok" | RwkvError = "ok";
  try {
    const ck = await openPth(path);
    try {
      for (const name of ck.tensors.keys()) await ck.read(name);
    } finally {
      ck.close();
    }
  } catch (e) {
    assert(e instanceof RwkvError, `${what}: not a typed error: ${(e as Error)?.stack ?? e}`);
    outcome = e;
  }
  const ms = performance.now() - t0;
  if (ms > 1000) console.log(`${what}: took ${ms.toFixed(0)} ms`);
  return outcome;
}

/** Runs `fn` on a temporary copy of `bytes`. */
async function withBytes<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir();
  try {
    const p = `${dir}/hostile.pth`;
    await Deno.writeFile(p, bytes);
    return await fn(p);
  } finally {
    await cleanup();
  }
}

const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Pickles that would run code

Deno.test("pth hostile: os.system in a zip or legacy file is refused by name; nothing runs", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const marker = `${dir}/pwned`;
    const cmd = enc.encode(`touch ${marker}`);
    // The brief's payload, with a command that would leave a trace.
    const payload = new Uint8Array([
      ...latin1("\x80\x02cposix\nsystem\nq\x00X"),
      ...u32(cmd.length),
      ...cmd,
      ...latin1("q\x01\x85q\x02Rq\x03."),
    ]);
    const cases: [string, Uint8Array][] = [
      ["zip", await makeZip([["archive/data.pkl", payload]])],
      ["zip with another prefix", await makeZip([["evil/data.pkl", payload]])],
      ["legacy main pickle", legacyFile(payload)],
      ["legacy magic pickle", legacyFile(pickle(0x2e), [], payload)],
    ];
    for (const [what, bytes] of cases) {
      const p = `${dir}/${what.replaceAll(" ", "_")}.pth`;
      await Deno.writeFile(p, bytes);
      const err = await assertRejects(() => openPth(p), UnsafePickleError, "posix.system");
      assertEquals(err.global, "posix.system", what);
      assert(
        err.message.includes(
          `refusing to load posix.system from file ${p}: not an allowed tensor type`,
        ),
        err.message,
      );
    }
    await assertRejects(() => Deno.stat(marker), Deno.errors.NotFound);
  } finally {
    await cleanup();
  }
});

Deno.test("pth hostile: other dangerous globals are refused, via GLOBAL and STACK_GLOBAL", async () => {
  const refused = [
    ["builtins", "eval"],
    ["subprocess", "Popen"],
    ["os", "system"],
    ["builtins", "getattr"],
    ["torch", "load"],
    ["torch.storage", "_load_from_bytes"],
    ["numpy.core.multiarray", "_reconstruct"],
    ["collections", "defaultdict"],
    ["builtins", "set"],
  ];
  for (const [module, name] of refused) {
    const viaGlobal = pickle(globalOp(module, name), "print(1)", 0x85, 0x52, 0x2e);
    // protocol 4 style: module and name as strings, then STACK_GLOBAL
    const viaStack = pickle(module, name, 0x93, "x", 0x85, 0x52, 0x2e);
    // hidden as the callable inside a tensor's arguments, after an allowed global
    const nested = pickle(
      globalOp("collections", "OrderedDict"),
      0x29,
      0x52,
      "w",
      globalOp(module, name),
      0x29,
      0x52,
      0x73,
      0x2e,
    );
    for (
      const [what, pkl] of [["GLOBAL", viaGlobal], ["STACK_GLOBAL", viaStack], [
        "nested",
        nested,
      ]] as const
    ) {
      await withBytes(await makeZip([["archive/data.pkl", pkl]]), async (p) => {
        const err = await assertRejects(() => openPth(p), UnsafePickleError, `${module}.${name}`);
        assertEquals(err.global, `${module}.${name}`, what);
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Damaged fixtures

const KINDS: [string, string | undefined][] = [
  ["zip", fixture("tiny-rwkv-4v0.pth")],
  ["zip bf16", fixture("tiny-rwkv-7v0-bf16.pth")],
  ["legacy", fixture("tiny-rwkv-4v0-legacy-f16.pth")],
];

for (const [kind, path] of KINDS) {
  Deno.test({
    name: `pth hostile: ${kind} fixture truncated at 30 positions gives a typed error fast`,
    ignore: !path,
    fn: async () => {
      const full = await Deno.readFile(path!);
      const n = full.length;
      // Spread over the file, plus the places where structure lives.
      const cuts = new Set([0, 1, 2, 10, 30, 100, 1000, 4000, n - 1, n - 10, n - 22, n - 23]);
      for (let i = 1; i < 20; i++) cuts.add(Math.floor((n * i) / 20));
      const { dir, cleanup } = await tempDir();
      try {
        for (const cut of cuts) {
          const p = `${dir}/cut-${cut}.pth`;
          await Deno.writeFile(p, full.subarray(0, cut));
          const r = await openAndReadAll(p, `${kind} cut at ${cut}`);
          assert(r instanceof FormatError, `${kind} cut at ${cut} opened`);
        }
      } finally {
        await cleanup();
      }
    },
  });

  Deno.test({
    name: `pth hostile: ${kind} fixture with 40 seeded byte flips opens or fails typed, fast`,
    ignore: !path,
    fn: async () => {
      const full = await Deno.readFile(path!);
      const n = full.length, rand = rng(0x5eed + n);
      const { dir, cleanup } = await tempDir();
      let failed = 0;
      try {
        for (let i = 0; i < 40; i++) {
          // A third anywhere, a third in the pickles at the start, a third in the directory.
          const region = i % 3;
          const pos = region === 0
            ? Math.floor(rand() * n)
            : region === 1
            ? Math.floor(rand() * Math.min(n, 8192))
            : n - 1 - Math.floor(rand() * Math.min(n, 4096));
          const bytes = full.slice();
          bytes[pos] ^= 1 + Math.floor(rand() * 255);
          const p = `${dir}/flip-${i}.pth`;
          await Deno.writeFile(p, bytes);
          if ((await openAndReadAll(p, `${kind} flip at ${pos}`)) !== "ok") failed++;
        }
      } finally {
        await cleanup();
      }
      assert(failed > 0, "no flip was noticed at all");
    },
  });
}

const zip4 = fixture("tiny-rwkv-4v0.pth");

/** Offset and size of `name`'s central directory record in a (non-ZIP64) zip. */
function centralRecord(zip: Uint8Array, name: string): number {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.length);
  const eocd = zip.length - 22;
  let o = v.getUint32(eocd + 16, true);
  const dec = new TextDecoder();
  for (;;) {
    assertEquals(v.getUint32(o, true), 0x02014b50);
    const nl = v.getUint16(o + 28, true);
    if (dec.decode(zip.subarray(o + 46, o + 46 + nl)) === name) return o;
    o += 46 + nl + v.getUint16(o + 30, true) + v.getUint16(o + 32, true);
  }
}

Deno.test({
  name: "pth hostile: pickle bytes flipped behind a fixed-up CRC exercise the VM, typed and fast",
  ignore: !zip4,
  fn: async () => {
    const full = await Deno.readFile(zip4!);
    const cd = centralRecord(full, "tiny-rwkv-4v0/data.pkl");
    const v = new DataView(full.buffer);
    const size = v.getUint32(cd + 24, true);
    const start = 30 + v.getUint16(26, true) + v.getUint16(28, true); // data.pkl is first
    const rand = rng(42);
    const { dir, cleanup } = await tempDir();
    try {
      for (let i = 0; i < 40; i++) {
        const bytes = full.slice();
        const dv = new DataView(bytes.buffer);
        const pos = start + Math.floor(rand() * size);
        bytes[pos] ^= 1 + Math.floor(rand() * 255);
        dv.setUint32(cd + 16, crc32(bytes.subarray(start, start + size)), true);
        const p = `${dir}/pkl-${i}.pth`;
        await Deno.writeFile(p, bytes);
        await openAndReadAll(p, `pickle flip at ${pos - start}`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "pth hostile: a storage entry whose declared size lies is refused, naming the entry",
  ignore: !zip4,
  fn: async () => {
    const full = await Deno.readFile(zip4!);
    const entry = "tiny-rwkv-4v0/data/0"; // emb.weight, 131072 bytes
    const cd = centralRecord(full, entry);
    for (const size of [131072 - 4, 131072 + 4, 0, 0xfffffff0]) {
      const bytes = full.slice();
      const v = new DataView(bytes.buffer);
      v.setUint32(cd + 20, size, true);
      v.setUint32(cd + 24, size, true);
      await withBytes(bytes, async (p) => {
        const r = await openAndReadAll(p, `size ${size}`);
        assert(r instanceof FormatError && r.message.includes(entry), `size ${size}: ${r}`);
      });
    }
    // compressed and uncompressed sizes of a stored entry disagree
    const bytes = full.slice();
    new DataView(bytes.buffer).setUint32(cd + 20, 131072 - 4, true);
    await withBytes(bytes, async (p) => {
      await assertRejects(() => openPth(p), FormatError, entry);
    });
  },
});

Deno.test("pth hostile: lying sizes in crafted stored and deflated zips", async () => {
  // One float32 tensor "w" of 4 elements in storage "0".
  const pkl = pickle(
    globalOp("collections", "OrderedDict"),
    0x29,
    0x52,
    "w",
    globalOp("torch._utils", "_rebuild_tensor_v2"),
    0x28,
    0x28,
    "storage",
    globalOp("torch", "FloatStorage"),
    "0",
    "cpu",
    0x4b,
    4,
    0x74,
    0x51,
    0x4b,
    0,
    0x4b,
    4,
    0x85,
    0x4b,
    1,
    0x85,
    0x89,
    globalOp("collections", "OrderedDict"),
    0x29,
    0x52,
    0x74,
    0x52,
    0x73,
    0x2e,
  );
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  const files: [string, Uint8Array][] = [["m/data.pkl", pkl], ["m/data/0", data]];
  // the honest archives open and read
  for (const deflate of [false, true]) {
    await withBytes(await makeZip(files, { deflate }), async (p) => {
      assertEquals(await openAndReadAll(p, `honest deflate=${deflate}`), "ok");
    });
  }
  const zDeflated = await deflateRaw(data);
  const zPickle = await deflateRaw(pkl);
  const lies: [string, boolean, Record<string, [number, number]>, string][] = [
    ["stored storage smaller", false, { "m/data/0": [12, 12] }, "m/data/0"],
    ["stored storage larger", false, { "m/data/0": [20, 20] }, "m/data/0"],
    ["stored pickle smaller", false, { "m/data.pkl": [pkl.length - 5, pkl.length - 5] }, "pkl"],
    ["deflated storage smaller", true, { "m/data/0": [zDeflated.length, 12] }, "m/data/0"],
    ["deflated storage larger", true, { "m/data/0": [zDeflated.length, 20] }, "m/data/0"],
    [
      "deflated pickle smaller",
      true,
      { "m/data.pkl": [zPickle.length, pkl.length - 1] },
      "data.pkl",
    ],
    [
      "deflated pickle larger",
      true,
      { "m/data.pkl": [zPickle.length, pkl.length + 1] },
      "data.pkl",
    ],
    ["deflate bomb claim", true, { "m/data.pkl": [zPickle.length, 2 ** 31] }, "data.pkl"],
    ["compressed size past the end", true, { "m/data/0": [1 << 30, 16] }, "m/data/0"],
  ];
  for (const [what, deflate, declare, names] of lies) {
    await withBytes(await makeZip(files, { deflate, declare }), async (p) => {
      const r = await openAndReadAll(p, what);
      assert(r instanceof FormatError, `${what} opened`);
      assert(r.message.includes(names), `${what}: ${r.message}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Pickles built to exhaust time or memory, or to break the VM

/** An OrderedDict with one float32 tensor "w" of `shape`/`stride` over a 4-element storage. */
function tensorPickle(shape: number[], stride: number[], offset = 0): Uint8Array {
  const ints = (xs: number[]) => [0x28, ...xs.flatMap((x) => [0x4a, ...u32(x)]), 0x74];
  return pickle(
    globalOp("collections", "OrderedDict"),
    0x29,
    0x52,
    "w",
    globalOp("torch._utils", "_rebuild_tensor_v2"),
    0x28,
    0x28,
    "storage",
    globalOp("torch", "FloatStorage"),
    "0",
    "cpu",
    0x4b,
    4,
    0x74,
    0x51,
    0x4a,
    u32(offset),
    ints(shape),
    ints(stride),
    0x89,
    globalOp("collections", "OrderedDict"),
    0x29,
    0x52,
    0x74,
    0x52,
    0x73,
    0x2e,
  );
}

Deno.test("pth hostile: resource-exhausting and malformed pickles fail typed and fast", async () => {
  const data = new Uint8Array(16);
  const fanout = (n: number, depth: number) => {
    // L0 = []; Li = [L(i-1)] * n via BINGET: a tiny pickle describing n^depth values.
    const b: number[] = [0x7d, 0x4b, 0, 0x5d, 0x71, 0, 0x30]; // {, 0, L0 memoised and popped
    for (let d = 1; d <= depth; d++) {
      b.push(0x5d, 0x28);
      for (let i = 0; i < n; i++) b.push(0x68, d - 1);
      b.push(0x65, 0x71, d);
      if (d < depth) b.push(0x30); // POP: only the last level stays on the stack
    }
    return pickle(b, 0x73, 0x2e); // {0: L(depth)}
  };
  const deep = (n: number) =>
    pickle(0x7d, "x", new Array(n).fill(0x5d), new Array(n - 1).fill(0x61), 0x73, 0x2e);
  const repeatedEncode = (n: number, len: number) => {
    // {i: _codecs.encode(s, "latin1") for i < n}, s a memoised string of `len` characters
    const body: number[] = [];
    for (let i = 0; i < n; i++) {
      body.push(0x4a, ...u32(i), 0x68, 2, 0x68, 1, 0x68, 3, 0x86, 0x52, 0x73);
    }
    const encode = globalOp("_codecs", "encode");
    return pickle(
      0x7d,
      "a".repeat(len),
      [0x71, 1, 0x30],
      encode,
      [0x71, 2, 0x30],
      "latin1",
      [
        0x71,
        3,
        0x30,
      ],
      body,
      0x2e,
    );
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ["memo fan-out into metadata", fanout(200, 6), /work/],
    ["bytes decoded over and over", repeatedEncode(20_000, 100_000), /work/],
    // Opens: metadata deeper than 16 levels is cut to "…".
    ["deeply nested lists", deep(200_000), /^ok$/],
    ["unknown opcode", pickle(0x7d, 0x69, 0x2e), /opcode 0x69.*|offset 3/],
    ["string longer than the file", pickle(0x58, u32(0xffffffff), 0x2e), /truncated/],
    ["BINUNICODE8 absurd length", pickle(0x8d, [0, 0, 0, 0, 0, 0, 0, 0x7f], 0x2e), /truncated/],
    ["missing memo", pickle(0x68, 9, 0x2e), /memo/],
    ["stack underflow", pickle(0x52, 0x2e), /underflow/],
    ["empty pickle", new Uint8Array(0), /truncated/],
    ["not a dict", pickle(0x5d, 0x2e), /not a dict/],
    ["view past its storage", tensorPickle([4], [1], 1), /needs 5 elements/],
    ["stride past its storage", tensorPickle([2, 2], [3, 1]), /storage/],
    ["terabyte broadcast", tensorPickle([1 << 20, 1 << 20], [0, 0]), /implausibly large/],
    ["rank 65", tensorPickle(new Array(65).fill(1), new Array(65).fill(1)), /at most 64/],
    ["negative offset", tensorPickle([1], [1], -1), /offset/],
  ];
  for (const [what, pkl, re] of cases) {
    await withBytes(await makeZip([["a/data.pkl", pkl], ["a/data/0", data]]), async (p) => {
      const r = await openAndReadAll(p, what);
      if (r === "ok") assert(re.test(r), `${what} opened`);
      else assert(r instanceof FormatError && re.test(r.message), `${what}: ${r.message}`);
    });
  }
  // The same pickles in a legacy file (no storages follow, so stop at the pickle).
  for (const [what, pkl, re] of cases.slice(0, 8)) {
    await withBytes(legacyFile(pkl), async (p) => {
      const r = await openAndReadAll(p, `legacy ${what}`);
      assert(r === "ok" ? re.test(r) : r instanceof FormatError, what);
    });
  }
});

Deno.test("pth hostile: legacy storage counts that lie, and files that are not checkpoints", async () => {
  const main = tensorPickle([4], [1]);
  const m = LEGACY_MAGIC;
  const proto = pickle(0x4d, [0xe9, 0x03], 0x2e);
  const sys = pickle(0x7d, 0x28, "little_endian", 0x88, 0x75, 0x2e);
  const keys = (...k: string[]) => pickle(0x5d, 0x28, ...k, 0x65, 0x2e);
  const file = (count: number, dataLen: number, ks = keys("0")) =>
    new Uint8Array([
      ...m,
      ...proto,
      ...sys,
      ...main,
      ...ks,
      ...u32(count),
      0,
      0,
      0,
      0,
      ...new Uint8Array(dataLen),
    ]);
  await withBytes(file(4, 16), async (p) => {
    assertEquals(await openAndReadAll(p, "honest legacy"), "ok");
  });
  const cases: [string, Uint8Array, RegExp][] = [
    ["count smaller", file(3, 16), /storage 0.*3 elements/],
    ["count larger", file(5, 20), /storage 0.*5 elements/],
    ["count huge", file(0xffffffff, 16), /storage 0/],
    ["data short", file(4, 15), /truncated/],
    ["key listed twice", file(4, 16, keys("0", "0")), /twice/],
    ["unknown key", file(4, 16, keys("9")), /storage 9/],
    ["big-endian", new Uint8Array([...m, ...proto, ...pickle(0x7d, 0x2e), ...main]), /endian/],
    ["bad magic", new Uint8Array([...proto, ...proto]), /magic/],
    ["text file", enc.encode("hello world\n"), /neither/],
  ];
  for (const [what, bytes, re] of cases) {
    await withBytes(bytes, async (p) => {
      const r = await openAndReadAll(p, what);
      assert(r instanceof FormatError, `${what} opened`);
      assert(re.test(r.message), `${what}: ${r.message}`);
    });
  }
});

Deno.test("pth hostile: budgets are options: a lowered one refuses, naming file and budget; the default reads", async () => {
  // A 16 MiB deflated storage ending in 1, 2, 3, 4, viewed by 20 tensors.
  const elements = 4 * 2 ** 20, size = elements * 4;
  const tensors: Record<string, { key: string; numel: number; shape: number[]; offset: number }> =
    {};
  for (let i = 0; i < 20; i++) {
    tensors[`v${i}`] = { key: "0", numel: elements, shape: [4], offset: elements - 4 };
  }
  const tail = f32([1, 2, 3, 4]);
  const full = new Uint8Array(size);
  full.set(tail, size - 16);
  const zip = await makeZip([
    { name: "a/data.pkl", data: new P().stateDict(tensors).done() },
    {
      name: "a/data/0",
      data: new Uint8Array(0),
      deflated: { body: deflateZeros(size - 16, tail), size, crc: crc32(full) },
    },
  ]);
  await withBytes(zip, async (p) => {
    const ck = await openCheckpoint(p);
    try {
      for (let i = 0; i < 20; i++) {
        assertEquals([...new Float32Array((await ck.read(`v${i}`)).slice().buffer)], [1, 2, 3, 4]);
      }
    } finally {
      ck.close();
    }
    const e = await assertRejects(
      () => openCheckpoint(p, { limits: { inflatedBytes: 8 * 2 ** 20 } }),
      FormatError,
    );
    assert(e.message.includes(p) && /limits\.inflatedBytes.*8388608/.test(e.message), e.message);
    await assertRejects(
      () => openCheckpoint(p, { limits: { tensors: 19 } }),
      FormatError,
      "limits.tensors",
    );
    await assertRejects(
      () => openCheckpoint(p, { limits: { pickleOps: 100 } }),
      FormatError,
      "limits.pickleOps",
    );
    await assertRejects(
      () => openCheckpoint(p, { limits: { bogus: 1 } as never }),
      TypeError,
      "unknown limit",
    );
  });
});
