/**
 * Huge pages for the weights (lib/model/huge_pages.ts): where Linux gives them on request, an
 * arena that asks gets memories the kernel has marked for them (`hg`, its VM_HUGEPAGE flag, in
 * the mapping's `VmFlags` in /proc/self/smaps: the kernel's own record of the request, whatever
 * pages it then finds), one that does not ask stays as it was, and a model loaded into them
 * computes the same bits.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { Arena } from "../lib/model/tensor.ts";
import { adviseHugePages, faultHugePages } from "../lib/model/huge_pages.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { createWasmModel } from "../lib/backend/wasm/mod.ts";

/** The kernel's THP mode, or undefined off Linux. */
function thpMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(
      Deno.readTextFileSync("/sys/kernel/mm/transparent_hugepage/enabled"),
    )?.[1];
  } catch {
    return undefined;
  }
}

/** Whether the mapping holding `memory`'s first byte has the kernel's `hg` flag (smaps). */
function advised(memory: WebAssembly.Memory): boolean {
  const at = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(memory.buffer)));
  const smaps = Deno.readTextFileSync("/proc/self/smaps").split("\n");
  for (let i = 0; i < smaps.length; i++) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(smaps[i]);
    if (!m || BigInt(at) < BigInt(`0x${m[1]}`) || BigInt(at) >= BigInt(`0x${m[2]}`)) continue;
    for (let j = i + 1; j < smaps.length && !/^[0-9a-f]+-/.test(smaps[j]); j++) {
      if (smaps[j].startsWith("VmFlags:")) return smaps[j].split(/\s+/).includes("hg");
    }
  }
  throw new Error("the memory's mapping is not in /proc/self/smaps");
}

const mode = thpMode();
if (mode !== "madvise") {
  console.error(
    `NOTICE: transparent huge pages are "${mode ?? "absent"}" here, not "madvise": ` +
      "the checks of the kernel's flags are skipped",
  );
}

Deno.test({
  name:
    "huge pages: an arena that asks gets memories the kernel marks for them; one that does not, not",
  ignore: mode !== "madvise",
  fn() {
    const asked = new Arena(8 << 20, 64, undefined, {
      hugePages: true,
      matrixMemoryBytes: 4 << 20,
    });
    const plain = new Arena(8 << 20, 64, undefined, { matrixMemoryBytes: 4 << 20 });
    const d = asked.allocMatrix(1024, 1024, "q8"); // a memory of matrices, grown to 1 MiB
    assert(asked.hugePages && !plain.hugePages, "what each arena reports");
    assert(advised(asked.memory) && advised(asked.memories[d.memory!]), "asked: advised");
    assert(!advised(plain.memory), "not asked: not advised");
    // the environment overrides the option
    Deno.env.set("RWKV_HUGE_PAGES", "0");
    try {
      const m = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
      assertEquals(adviseHugePages(m, 2 ** 32, true), false);
      assert(!advised(m), "RWKV_HUGE_PAGES=0: not advised");
    } finally {
      Deno.env.delete("RWKV_HUGE_PAGES");
    }
  },
});

Deno.test("huge pages: faulting fresh pages in changes no byte, and grown memories keep theirs", () => {
  const a = new Arena(1 << 20, 64, undefined, { hugePages: true, matrixMemoryBytes: 3 << 20 });
  const d1 = a.allocMatrix(1024, 1024, "q8");
  const v1 = a.view(d1);
  for (let i = 0; i < v1.data.length; i++) v1.data[i] = (i * 7919) % 251 - 125;
  const d2 = a.allocMatrix(1024, 1024, "q8"); // the same memory, grown (and faulted) after d1
  assertEquals(d1.memory, d2.memory);
  const again = a.view(d1).data;
  let same = true;
  for (let i = 0; i < again.length; i++) same &&= again[i] === (i * 7919) % 251 - 125;
  assert(same, "the first matrix's bytes survive the growth");
  assert(a.view(d2).data.every((x) => x === 0), "the fresh matrix is zero");
  const m = new WebAssembly.Memory({ initial: 80, maximum: 80, shared: true });
  new Uint8Array(m.buffer, 0, 65536).fill(9);
  faultHugePages(m, 65536, 80 * 65536);
  const u = new Uint8Array(m.buffer);
  assert(u.subarray(0, 65536).every((x) => x === 9) && u.subarray(65536).every((x) => x === 0));
});

const st7 = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "huge pages: a model loaded into them gives the same bits, one memory or several",
  ignore: !st7,
  async fn() {
    const logits: Float32Array[] = [];
    for (
      const opts of [
        { hugePages: false },
        { hugePages: true },
        { hugePages: true, matrixMemoryBytes: 65536 },
      ]
    ) {
      const ck = await openCheckpoint(st7!);
      const model = await createWasmModel(ck, { dtype: "q8", threads: 2, ...opts });
      try {
        logits.push(await model.forward([187, 51, 156, 31], model.createState()));
        // the engine's name says so (the CLIs' loading line, the server's /health)
        assertEquals(
          model.info.engine.endsWith(", huge pages)"),
          opts.hugePages && (mode === "madvise" || mode === "always"),
        );
      } finally {
        await model.dispose();
        ck.close();
      }
    }
    for (const l of logits.slice(1)) {
      assert(l.every((x, i) => Object.is(x, logits[0][i])), "the same logits, bit for bit");
    }
  },
});
