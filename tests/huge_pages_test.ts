/**
 * Huge pages for the weights (lib/model/huge_pages.ts): where Linux gives them on request, an
 * arena that asks gets memories the kernel has marked for them (`hg`, its VM_HUGEPAGE flag, in
 * the mapping's `VmFlags` in /proc/self/smaps: the kernel's own record of the request, whatever
 * pages it then finds), grown in whole huge pages; one that does not ask stays as it was; the
 * faults that bring the pages in change no byte; and a model loaded into them computes the same
 * bits.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { Arena } from "../lib/model/tensor.ts";
import { faultHugePages, HUGE_PAGE_BYTES } from "../lib/model/huge_pages.ts";
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

/**
 * Whether the kernel's `hg` flag (smaps' `VmFlags`) is on the mapping of `memory`'s first whole
 * 2 MiB page, where the advice starts.
 */
function advised(memory: WebAssembly.Memory): boolean {
  const base = BigInt(
    Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(memory.buffer))),
  );
  const huge = BigInt(HUGE_PAGE_BYTES), at = (base + huge - 1n) / huge * huge;
  assert(at + huge <= base + BigInt(memory.buffer.byteLength), "a whole huge page committed");
  const smaps = Deno.readTextFileSync("/proc/self/smaps").split("\n");
  for (let i = 0; i < smaps.length; i++) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(smaps[i]);
    if (!m || at < BigInt(`0x${m[1]}`) || at >= BigInt(`0x${m[2]}`)) continue;
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

// The tests set what they need: a user's RWKV_HUGE_PAGES would override the options they pass.
const userEnv = Deno.env.get("RWKV_HUGE_PAGES");
Deno.env.delete("RWKV_HUGE_PAGES");
addEventListener("unload", () => {
  if (userEnv !== undefined) Deno.env.set("RWKV_HUGE_PAGES", userEnv);
});

Deno.test({
  name: "huge pages: an arena that asks gets memories the kernel marks, grown in whole pages",
  ignore: mode !== "madvise",
  fn() {
    const opts = { matrixMemoryBytes: 8 << 20 };
    const asked = new Arena(8 << 20, 64, undefined, { hugePages: true, ...opts });
    const plain = new Arena(8 << 20, 64, undefined, opts);
    const d = asked.allocMatrix(4096, 1024, "q8"); // a memory of matrices, 4.5 MiB
    asked.f32(1 << 20); // the first memory grows past 4 MiB
    plain.f32(1 << 20);
    assert(asked.hugePages && !plain.hugePages, "what each arena reports");
    assert(advised(asked.memory) && advised(asked.memories[d.memory!]), "asked: advised");
    assert(!advised(plain.memory), "not asked: not advised");
    for (const m of asked.memories) {
      assertEquals(m.buffer.byteLength % HUGE_PAGE_BYTES, 0, "grown in whole huge pages");
    }
    // the environment overrides the option, both ways; a value it does not know is ignored
    const cases: [string, boolean, boolean][] = [
      ["0", true, false],
      ["off", true, false],
      ["1", false, true],
      ["maybe", true, true],
      ["maybe", false, false],
    ];
    for (const [env, option, expected] of cases) {
      Deno.env.set("RWKV_HUGE_PAGES", env);
      try {
        const a = new Arena(4 << 20, 64, undefined, { hugePages: option });
        assertEquals(a.hugePages, expected, `RWKV_HUGE_PAGES=${env}, hugePages: ${option}`);
        assertEquals(advised(a.memory), expected, `RWKV_HUGE_PAGES=${env}: the kernel's flag`);
      } finally {
        Deno.env.delete("RWKV_HUGE_PAGES");
      }
    }
  },
});

Deno.test("huge pages: the faults change no byte, and a grown memory keeps what it held", () => {
  // more than 2 MiB written before the memory grows: a fault at any old 2 MiB step would show
  const a = new Arena(1 << 20, 64, undefined, { hugePages: true, matrixMemoryBytes: 16 << 20 });
  const d1 = a.allocMatrix(3072, 1024, "q8"); // 3 MiB of values, 384 KiB of scales
  const v1 = a.view(d1);
  const value = (i: number) => (i * 7919) % 251 - 125;
  for (let i = 0; i < v1.data.length; i++) v1.data[i] = value(i);
  v1.scales.fill(0.25);
  const grownFrom = a.memories[d1.memory!].buffer.byteLength;
  const d2 = a.allocMatrix(3072, 1024, "q8"); // the same memory, grown (and faulted) after d1
  assertEquals(d1.memory, d2.memory);
  assert(a.memories[d1.memory!].buffer.byteLength > grownFrom, "the memory grew");
  const again = a.view(d1);
  let same = true;
  for (let i = 0; i < again.data.length; i++) same &&= again.data[i] === value(i);
  assert(same && again.scales.every((x) => x === 0.25), "the first matrix survives the growth");
  const v2 = a.view(d2);
  assert(v2.data.every((x) => x === 0) && v2.scales.every((x) => x === 0), "the new one is zero");
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
