/**
 * Large checkpoints in bounded memory: the quantized writer converts a block of rows at a time
 * (same bytes as each matrix whole), the writers leave zero runs as holes (same bytes as writing
 * the zeros), and a zip's CRC of a zero run is computed without the run.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { writePth } from "../lib/formats/pth_write.ts";
import { crc32, crc32Zeros } from "../lib/formats/_crc32.ts";
import { quantizeQ4, quantizeQ8, writeQuantized } from "../lib/quant/mod.ts";
import { f32ToBf16, toFloat32 } from "../lib/formats/dtype.ts";

Deno.test("crc32Zeros: equals the CRC-32 of that many zero bytes, from any start", () => {
  for (const n of [0, 1, 7, 8, 9, 255, 4096, 65537, 1_000_003]) {
    for (const start of [0, 0x12345678, 0xffffffff]) {
      assertEquals(crc32Zeros(n, start), crc32(new Uint8Array(n), start), `${n} from ${start}`);
    }
  }
});

const st7 = fixture("tiny-rwkv-7v0.safetensors");
const pth7 = fixture("tiny-rwkv-7v0-bf16.pth");

for (const [name, src] of [["safetensors", st7], [".pth bf16", pth7]] as const) {
  for (const quant of ["q8", "q4"] as const) {
    Deno.test({
      name: `writeQuantized: ${name} → ${quant} a row at a time is byte-identical to whole`,
      ignore: !src,
      fn: async () => {
        const { dir, cleanup } = await tempDir();
        const ck = await openCheckpoint(src!);
        try {
          const rows = `${dir}/rows.safetensors`, whole = `${dir}/whole.safetensors`;
          await writeQuantized(ck, rows, { quant, rowBlockBytes: 1 });
          await writeQuantized(ck, whole, { quant, rowBlockBytes: Infinity });
          const a = await Deno.readFile(rows), b = await Deno.readFile(whole);
          assert(a.length > 100_000, `${a.length} bytes`);
          assertEquals(a, b);
          // and both hold what quantizing the matrix in memory gives
          const out = await openCheckpoint(rows);
          try {
            const m = "blocks.1.att.key.weight", t = ck.tensors.get(m)!;
            const r = (quant === "q8" ? quantizeQ8 : quantizeQ4)(
              toFloat32(await ck.read(m), t.dtype),
            );
            assertEquals(await out.read(m), new Uint8Array(r.q.buffer));
            assertEquals(await out.read(`${m}.qscale`), new Uint8Array(f32ToBf16(r.scales).buffer));
          } finally {
            out.close();
          }
        } finally {
          ck.close();
          await cleanup();
        }
      },
    });
  }
}

/** A few tensors, one of them a large zero matrix, as `dense` bytes or as a hole. */
function tensors(hole: boolean): TensorToWrite[] {
  const big = 300 * 1024; // several pages of zeros, the last tensor: a trailing hole too
  const vec = new Uint8Array(new Float32Array([1, 2, 3, -4]).buffer);
  return [
    { name: "a", dtype: "F32", shape: [4], data: () => vec },
    { name: "z", dtype: "BF16", shape: [big / 2], data: () => hole ? big : new Uint8Array(big) },
    {
      name: "chunks",
      dtype: "U8",
      shape: [3 * 65536 + 5],
      data: async function* () {
        yield new Uint8Array(5).fill(7);
        yield hole ? 2 * 65536 : new Uint8Array(2 * 65536);
        yield new Uint8Array(65536).fill(1);
      },
    },
    { name: "tail", dtype: "U8", shape: [big], data: () => hole ? big : new Uint8Array(big) },
  ];
}

Deno.test("writers: zero runs left as holes give the same bytes as the zeros written", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    for (const ext of ["safetensors", "pth"]) {
      const write = (p: string, t: TensorToWrite[]) =>
        ext === "pth" ? writePth(p, t) : writeSafetensors(p, t);
      await write(`${dir}/dense.${ext}`, tensors(false));
      await write(`${dir}/sparse.${ext}`, tensors(true));
      const dense = await Deno.readFile(`${dir}/dense.${ext}`);
      assertEquals(await Deno.readFile(`${dir}/sparse.${ext}`), dense, ext);
      const ck = await openCheckpoint(`${dir}/sparse.${ext}`);
      try {
        assertEquals((await ck.read("chunks")).subarray(0, 6), new Uint8Array([7, 7, 7, 7, 7, 0]));
      } finally {
        ck.close();
      }
    }
  } finally {
    await cleanup();
  }
});

Deno.test("writers: a tensor whose data is too short or too long is refused", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    for (const n of [3, 5]) {
      const t: TensorToWrite[] = [{ name: "x", dtype: "U8", shape: [4], data: () => n }];
      let err: unknown;
      await writeSafetensors(`${dir}/x.safetensors`, t).catch((e) => (err = e));
      assert(err instanceof Error && /x/.test(err.message), String(err));
    }
  } finally {
    await cleanup();
  }
});
