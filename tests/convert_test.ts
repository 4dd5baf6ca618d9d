/**
 * `.pth` → `.safetensors` conversion, through the library and the CLI.
 */
import { openCheckpoint } from "../lib/formats/open.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { convertToSafetensors } from "../convert/safetensors.ts";
import { toFloat32 } from "../lib/formats/dtype.ts";
import { FormatError } from "../lib/errors.ts";
import { fixture, listFixtures, tempDir } from "../testing/fixtures.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { runScript } from "./_with.ts";

const pths = listFixtures(/^tiny-rwkv-.*\.pth$/, "", "conversions of the tiny .pth models");

for (const name of pths) {
  Deno.test(`convert: ${name} → safetensors keeps every tensor bit-identical`, async () => {
    const { dir, cleanup } = await tempDir();
    const src = await openCheckpoint(fixture(name)!);
    try {
      const out = `${dir}/out.safetensors`;
      await convertToSafetensors(src, out);
      const st = await openSafetensors(out);
      try {
        assertEquals([...st.tensors.keys()].sort(), [...src.tensors.keys()].sort());
        for (const t of src.tensors.values()) {
          const u = st.tensors.get(t.name)!;
          assertEquals([u.dtype, u.shape], [t.dtype, t.shape], t.name);
          assertEquals(await st.read(t.name), await src.read(t.name), t.name);
        }
      } finally {
        st.close();
      }
    } finally {
      src.close();
      await cleanup();
    }
  });
}

const bf16 = fixture("tiny-rwkv-7v0-bf16.pth"), f32 = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "convert: the safetensors fixture and its bf16 .pth twin agree",
  ignore: !bf16 || !f32,
  fn: async () => {
    const a = await openCheckpoint(bf16!), b = await openSafetensors(f32!);
    try {
      assertEquals([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      for (const t of a.tensors.values()) {
        assertEquals(t.shape, b.tensors.get(t.name)!.shape, t.name);
        // --dtype bf16 conversion of the f32 file must give the .pth's bytes exactly
        const fromF32 = toFloat32(await b.read(t.name), b.tensors.get(t.name)!.dtype);
        const rounded = new Uint16Array(fromF32.length);
        const { f32ToBf16 } = await import("../lib/formats/dtype.ts");
        f32ToBf16(fromF32, rounded);
        assertEquals(new Uint8Array(rounded.buffer), await a.read(t.name), t.name);
      }
    } finally {
      a.close();
      b.close();
    }
  },
});

const run = (...args: string[]) => runScript("cli/convert.ts", args);

Deno.test("convert CLI: --help, bad flags, refusal to overwrite, no partial output", async () => {
  const help = await run("--help");
  assertEquals(help.code, 0);
  assert(help.stdout.includes("--dtype"));
  const bad = await run("--dtype", "f8", "a", "b");
  assertEquals(bad.code, 2);
  assert(bad.stderr.includes("--dtype"), bad.stderr);
  const { dir, cleanup } = await tempDir();
  try {
    // a truncated input fails and leaves no output behind
    const src = fixture("tiny-rwkv-4v0.pth");
    if (src) {
      const bytes = await Deno.readFile(src);
      await Deno.writeFile(`${dir}/cut.pth`, bytes.subarray(0, bytes.length - 5000));
      const r = await run(`${dir}/cut.pth`, `${dir}/cut.safetensors`);
      assertEquals(r.code, 2, r.stderr); // bad input: one line, exit 2
      assert(r.stderr.includes("cut.pth"), r.stderr);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["cut.pth"]);
      // converts, then refuses to overwrite without --force
      const ok = await run(src, `${dir}/a.safetensors`, "--dtype", "bf16", "--quiet");
      assertEquals(ok.code, 0, ok.stderr);
      const again = await run(src, `${dir}/a.safetensors`);
      assertEquals(again.code, 2);
      assert(again.stderr.includes("--force"), again.stderr);
      assertEquals(
        (await run(src, `${dir}/a.safetensors`, "--force", "--quiet", "--dtype", "bf16")).code,
        0,
      );
      const st = await openSafetensors(`${dir}/a.safetensors`);
      assert([...st.tensors.values()].every((t) => t.dtype === "BF16"));
      st.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("convert: an error mid-way leaves no file", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const ck = {
      path: "fake.pth",
      format: "pth" as const,
      metadata: {},
      tensors: new Map([["a", { name: "a", dtype: "F32" as const, shape: [4], byteLength: 16 }]]),
      read: () => Promise.reject(new FormatError("fake.pth", "a", "boom")),
      close() {},
    };
    await assertRejects(() => convertToSafetensors(ck, `${dir}/o.safetensors`), FormatError);
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  } finally {
    await cleanup();
  }
});
