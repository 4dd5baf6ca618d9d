/**
 * Bad input to the inference core gets clear errors naming the problem.
 */
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { createReferenceModel } from "../lib/backend/reference/mod.ts";
import { FormatError, ModelError, UsageError } from "../lib/errors.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { assertRejects } from "./_assert.ts";
import { f32ToF16, toFloat32 } from "../lib/formats/dtype.ts";

const src = fixture("tiny-rwkv-7v0.safetensors");

/** Copies the fixture with `edit` applied to its tensor list. */
async function variant(
  dir: string,
  name: string,
  edit: (
    list: { name: string; dtype: "F32"; shape: number[]; data: () => Promise<Uint8Array> }[],
  ) => void,
): Promise<string> {
  const ck = await openSafetensors(src!);
  const list = [...ck.tensors.values()].map((t) => ({
    name: t.name,
    dtype: "F32" as const,
    shape: [...t.shape],
    data: () => ck.read(t.name),
  }));
  edit(list);
  const out = `${dir}/${name}.safetensors`;
  await writeSafetensors(out, list);
  ck.close();
  return out;
}

async function load(path: string, dtype?: "f16") {
  const ck = await openSafetensors(path);
  try {
    return await createReferenceModel(ck, { dtype });
  } finally {
    ck.close();
  }
}

Deno.test({
  name: "model errors: unknown layout, missing and mis-shaped tensors are named",
  ignore: !src,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const noBlocks = await variant(dir, "noblocks", (l) => l.splice(0, l.length, l[0]));
      await assertRejects(() => load(noBlocks), ModelError, /not an RWKV-4\/5\/6\/7 checkpoint/);
      const missing = await variant(dir, "missing", (l) => {
        l.splice(l.findIndex((t) => t.name === "blocks.3.att.value.weight"), 1);
      });
      await assertRejects(() => load(missing), ModelError, "blocks.3.att.value.weight");
      const bad = await variant(dir, "misshaped", (l) => {
        const t = l.find((t) => t.name === "blocks.2.ffn.key.weight")!;
        t.shape = [t.shape[0] / 2, 2 * t.shape[1]]; // same bytes, wrong shape
      });
      await assertRejects(() => load(bad), ModelError, "blocks.2.ffn.key.weight");
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "model errors: token ids outside the vocabulary and empty input",
  ignore: !src,
  fn: async () => {
    const model = await load(src!);
    const s = model.createState();
    await assertRejects(() => model.forward([256], s), UsageError, "token id 256");
    await assertRejects(() => model.forward([-1], s), UsageError, "token id -1");
    await assertRejects(() => model.forward([1.5], s), UsageError, "token id 1.5");
    await assertRejects(() => model.forward([], s), UsageError, "at least one token");
  },
});

Deno.test({
  name: "model errors: f16 storage refuses a weight it cannot hold, naming file and tensor",
  ignore: !src,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const big = await variant(dir, "big", (l) => {
        const t = l.find((t) => t.name === "blocks.1.ffn.key.weight")!;
        const read = t.data;
        t.data = async () => {
          const bytes = (await read()).slice();
          new DataView(bytes.buffer).setFloat32(4 * 70, 1e6, true); // row 1: past ±65504
          return bytes;
        };
      });
      const e = await assertRejects(
        () => load(big, "f16"),
        FormatError,
        "blocks.1.ffn.key.weight: value 1000000 at row 1 cannot be stored as f16",
      );
      if (!e.message.includes(big)) throw new Error(`names the file: ${e.message}`);
      await (await load(big)).dispose(); // f32 storage holds it
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "model errors: an f16 checkpoint copied as it is still refuses an infinity, naming it",
  ignore: !src,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const half = await variant(dir, "half", (l) => {
        for (const t of l) {
          const read = t.data;
          (t as { dtype: string }).dtype = "F16";
          t.data = async () => {
            const h = f32ToF16(toFloat32(await read(), "F32"));
            if (t.name === "blocks.1.ffn.key.weight") h[70] = 0x7c00; // +inf, row 1
            return new Uint8Array(h.buffer);
          };
        }
      });
      const e = await assertRejects(
        () => load(half, "f16"),
        FormatError,
        "blocks.1.ffn.key.weight: value at row 1 is infinite or NaN in f16",
      );
      if (!e.message.includes(half)) throw new Error(`names the file: ${e.message}`);
    } finally {
      await cleanup();
    }
  },
});
