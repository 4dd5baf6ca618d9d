/**
 * bench/_rwkvcpp_file.ts, the rwkv.cpp file writer the rwkv.cpp comparison runs on: rwkv.cpp's
 * own FP16 file rewritten from its weights, an RWKV-7 round trip through our reader, refusals.
 */
import { assert, assertClose, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { openRwkvCpp } from "../lib/formats/rwkvcpp.ts";
import { toFloat32 } from "../lib/formats/dtype.ts";
import type { Checkpoint } from "../lib/formats/checkpoint.ts";
import { writeRwkvCpp } from "../bench/_rwkvcpp_file.ts";

/** Runs `fn` on the checkpoint at `path` and a temporary directory; closes and removes both. */
async function withCheckpoint(path: string, fn: (ck: Checkpoint, dir: string) => Promise<void>) {
  const { dir, cleanup } = await tempDir();
  const ck = await openCheckpoint(path);
  try {
    await fn(ck, dir);
  } finally {
    ck.close();
    await cleanup();
  }
}

const fp16 = fixture("rwkv.cpp/tiny-rwkv-4v0-660K-FP16.bin");
Deno.test({
  name:
    "rwkv.cpp writer: rwkv.cpp's own RWKV-4 FP16 file, rewritten from its weights, byte for byte",
  ignore: !fp16,
  // read back into the official layout, written out again
  fn: () =>
    withCheckpoint(fp16!, async (ck, dir) => {
      const out = `${dir}/4v0-FP16.bin`;
      await writeRwkvCpp(ck, out, "FP16");
      const want = await Deno.readFile(fp16!), got = await Deno.readFile(out);
      assertEquals(got.length, want.length);
      const version = (b: Uint8Array) => new DataView(b.buffer).getUint32(4, true);
      // that file is from rwkv.cpp's converter before it wrote version 101, as it does now
      assertEquals([version(want), version(got)], [100, 101]);
      got.set(want.subarray(4, 8), 4);
      const first = got.findIndex((b, i) => b !== want[i]);
      assertEquals(first, -1, `first differing byte at ${first}`);
    }),
});

const st7 = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "rwkv.cpp writer: RWKV-7 FP32 and FP16 files read back as the official tensors",
  ignore: !st7,
  fn: () =>
    withCheckpoint(st7!, async (src, dir) => {
      for (const type of ["FP32", "FP16"] as const) {
        const out = `${dir}/7v0-${type}.bin`;
        const { tensors } = await writeRwkvCpp(src, out, type);
        // x_r … x_g went out as one att.x_rwkvag per layer
        assertEquals(tensors, src.tensors.size - 5 * 6);
        const back = await openRwkvCpp(out);
        try {
          assertEquals(back.metadata.arch, "7");
          assertEquals([...back.tensors.keys()].sort(), [...src.tensors.keys()].sort());
          for (const [name, t] of src.tensors) {
            const u = back.tensors.get(name)!;
            assertEquals(u.shape, t.shape, name);
            const x = toFloat32(await back.read(name), u.dtype);
            const y = toFloat32(await src.read(name), t.dtype);
            // FP16 matrices: half's 11 significant bits (values here below 4 in magnitude)
            assertClose(x, y, u.dtype === "F16" ? 2e-3 : 0, name);
            if (type === "FP32") assertEquals(u.dtype, "F32", name);
          }
          assertEquals(
            back.tensors.get("blocks.0.att.key.weight")!.dtype,
            type === "FP16" ? "F16" : "F32",
          );
        } finally {
          back.close();
        }
      }
    }),
});

/** Each tensor record of an rwkv.cpp file: name → dims as stored (ggml order). */
function records(b: Uint8Array): Map<string, number[]> {
  const dv = new DataView(b.buffer, b.byteOffset), out = new Map<string, number[]>();
  // data bytes of a record by type: FP32, FP16, Q5_1 (24 bytes per 32 values)
  const size = (type: number, n: number) => type === 0 ? 4 * n : type === 1 ? 2 * n : n / 32 * 24;
  for (let at = 24; at < b.length;) {
    const [dims, len, type] = [0, 4, 8].map((o) => dv.getUint32(at + o, true));
    const shape = Array.from({ length: dims }, (_, i) => dv.getUint32(at + 12 + 4 * i, true));
    at += 12 + 4 * dims;
    out.set(new TextDecoder().decode(b.subarray(at, at + len)), shape);
    at += len + size(type, shape.reduce((p, q) => p * q, 1));
  }
  return out;
}

const q7 = fixture("rwkv.cpp/tiny-rwkv-7v0-834K-Q5_1.bin");
Deno.test({
  name: "rwkv.cpp writer: RWKV-7 records named and shaped as in rwkv.cpp's own file of that model",
  ignore: !st7 || !q7,
  // that model's first 6 of 12 layers
  fn: () =>
    withCheckpoint(st7!, async (src, dir) => {
      await writeRwkvCpp(src, `${dir}/7v0.bin`, "FP16");
      const ours = records(await Deno.readFile(`${dir}/7v0.bin`));
      const theirs = records(await Deno.readFile(q7!));
      assert(ours.has("blocks.5.att.x_rwkvag") && ours.has("blocks.0.att.w1"));
      for (const [name, dims] of ours) assertEquals(dims, theirs.get(name), name);
    }),
});

const pth5 = fixture("tiny-rwkv-5v2-bf16.pth");
Deno.test({
  name: "rwkv.cpp writer: versions other than 4 and 7 are refused by name, nothing left behind",
  ignore: !pth5,
  fn: () =>
    withCheckpoint(pth5!, async (ck, dir) => {
      await assertRejects(() => writeRwkvCpp(ck, `${dir}/5.bin`, "FP16"), RangeError, "RWKV-5");
      assert((await Array.fromAsync(Deno.readDir(dir))).length === 0);
    }),
});
