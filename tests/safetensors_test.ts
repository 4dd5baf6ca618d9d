import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { FormatError } from "../lib/errors.ts";
import { toFloat32 } from "../lib/formats/dtype.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";

const st7 = fixture("tiny-rwkv-7v0.safetensors");

Deno.test({
  name: "safetensors: the RWKV-7 fixture lists its tensors and reads them",
  ignore: !st7,
  fn: async () => {
    const ck = await openSafetensors(st7!);
    try {
      const emb = ck.tensors.get("emb.weight")!;
      assertEquals(emb.dtype, "F32");
      assertEquals(emb.shape, [256, 64]);
      assertEquals(ck.tensors.get("head.weight")!.shape, [256, 64]);
      const layers = new Set(
        [...ck.tensors.keys()].filter((n) => n.startsWith("blocks.")).map((n) => n.split(".")[1]),
      );
      assertEquals(layers.size, 6);
      const x = toFloat32(await ck.read("emb.weight"), "F32");
      assertEquals(x.length, 256 * 64);
      assert(x.every(Number.isFinite));
      // into a caller buffer
      const buf = new Uint8Array(emb.byteLength);
      await ck.read("emb.weight", buf);
      assertEquals(new Float32Array(buf.buffer), x);
      // ranged reads: rows 10..12 of the embedding, and nothing outside the tensor
      const part = await ck.readRange!("emb.weight", 10 * 256, new Uint8Array(3 * 256));
      assertEquals(new Float32Array(part.buffer), x.subarray(640, 832));
      await assertRejects(
        () => ck.readRange!("emb.weight", emb.byteLength - 4, new Uint8Array(8)),
        FormatError,
        /emb\.weight: range .* outside the tensor/,
      );
    } finally {
      ck.close();
    }
  },
});

function craft(header: unknown, dataBytes: number, lenOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

Deno.test("safetensors: hostile headers give FormatError naming the field", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const cases: [string, Uint8Array, RegExp][] = [
      ["huge", craft({}, 0, 1n << 60n), /header length/],
      [
        "badjson",
        (() => {
          const b = craft({ a: 1 }, 0);
          b[9] = 0x7b;
          b[10] = 0x7b;
          return b;
        })(),
        /header/,
      ],
      [
        "overlap",
        craft({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        }, 12),
        /overlaps/,
      ],
      [
        "pastend",
        craft({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 8),
        /truncated/,
      ],
      [
        "dtype",
        craft({ a: { dtype: "Q9", shape: [1], data_offsets: [0, 1] } }, 1),
        /unknown dtype/,
      ],
      [
        "span",
        craft({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8),
        /needs 12 bytes/,
      ],
      ["short", new Uint8Array(5), /shorter than 8/],
    ];
    for (const [name, bytes, re] of cases) {
      const p = `${dir}/${name}.safetensors`;
      await Deno.writeFile(p, bytes);
      const err = await assertRejects(() => openSafetensors(p), FormatError);
      assert(re.test(err.message), `${name}: ${err.message}`);
      assert(err.message.includes(p), `${name}: message names the file`);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("safetensors: writer round-trips, aligns the header, and is atomic", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const p = `${dir}/w.safetensors`;
    const a = new Float32Array([1, -2, 3.5, 4]);
    const b = new Uint16Array([1, 2, 3]);
    await writeSafetensors(p, [
      { name: "a", dtype: "F32", shape: [2, 2], data: () => new Uint8Array(a.buffer) },
      { name: "b", dtype: "BF16", shape: [3], data: () => new Uint8Array(b.buffer) },
    ], { metadata: { hello: "world" } });
    const raw = await Deno.readFile(p);
    const hlen = Number(new DataView(raw.buffer).getBigUint64(0, true));
    assertEquals(hlen % 8, 0);
    const ck = await openSafetensors(p);
    assertEquals(ck.metadata, { hello: "world" });
    assertEquals(new Float32Array((await ck.read("a")).slice().buffer), a);
    assertEquals(new Uint16Array((await ck.read("b")).slice().buffer), b);
    ck.close();
    // refuses to overwrite, and a failing write leaves nothing behind
    await assertRejects(() => writeSafetensors(p, []), FormatError);
    const q = `${dir}/fail.safetensors`;
    await assertRejects(() =>
      writeSafetensors(q, [{
        name: "x",
        dtype: "F32",
        shape: [4],
        data: () => {
          throw new Error("boom");
        },
      }])
    );
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["w.safetensors"]);
  } finally {
    await cleanup();
  }
});
