/**
 * Refusing before allocating: a model that needs more memory than the load may take is refused
 * with an OutOfMemoryError that gives the figures and the dtype that would fit (never one that
 * would not help), before the arena exists; the CLIs print it as one line.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { OutOfMemoryError } from "../lib/errors.ts";
import { loadModel } from "../lib/load.ts";
import { availableMemory, checkFits, LOAD_OVERHEAD_BYTES } from "../lib/model/memory.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { detectSpec } from "../lib/spec/spec.ts";
import { failureLine } from "../cli/_main.ts";

const st7 = fixture("tiny-rwkv-7v0.safetensors");

Deno.test("memory: availableMemory reads the system's figure", () => {
  const m = availableMemory();
  assert(m > 2 ** 20 && m < 2 ** 50, `${m}`);
});

Deno.test({
  name: "memory: a model that does not fit is refused with the figures and the dtype that fits",
  ignore: !st7,
  fn: async () => {
    const refuse = (dtype: "auto" | "q4" | "q8", availableMemory: number) =>
      assertRejects(
        () => loadModel(st7!, { dtype, availableMemory, threads: 1 }),
        OutOfMemoryError,
      );
    // nothing fits in nothing: the smallest dtype's need is named
    const none = await refuse("auto", 0);
    assert(none.message.includes(st7!), none.message);
    assert(/needs? [\d.]+ GiB as its own dtype/.test(none.message), none.message);
    assert(/no dtype fits \(the smallest, q4, needs/.test(none.message), none.message);
    assertEquals(none.fits, undefined);
    // q4 asked: no smaller dtype to suggest
    const q4 = await refuse("q4", 0);
    assert(/no smaller dtype exists/.test(q4.message), q4.message);
    assert(q4.needBytes < none.needBytes / 2, `${q4.needBytes} vs ${none.needBytes}`);
    // room for q4 but not q8: q4 is the advice, and then it loads
    const room = LOAD_OVERHEAD_BYTES + q4.needBytes;
    const e = await refuse("auto", room);
    assertEquals(e.fits, "q4");
    assert(/q4 \([\d.]+ GiB\) would fit/.test(e.message), e.message);
    await refuse("q8", room);
    const model = await loadModel(st7!, { dtype: "q4", availableMemory: room, threads: 1 });
    assertEquals(model.info.dtype, "q4");
    await model.dispose();
    // the CLIs' one line
    assertEquals(failureLine(e), `error: ${e.message}`);
  },
});

Deno.test({
  name: "memory: a backend holding weights in one 32-bit memory is bounded by 4 GiB, said so",
  ignore: !st7,
  fn: async () => {
    const ck = await openCheckpoint(st7!);
    try {
      const spec = detectSpec(ck.tensors, ck.path);
      const five = 5 * 2 ** 30, lots = 1e15;
      checkFits(ck, spec, five, { dtype: "q8", availableBytes: lots }); // matrices split: fits
      let err: unknown;
      try {
        checkFits(ck, spec, five, { dtype: "q8", availableBytes: lots, singleMemory: true });
      } catch (e) {
        err = e;
      }
      assert(err instanceof OutOfMemoryError, String(err));
      assert(/one WebAssembly memory of at most 4 GiB/.test(err.message), err.message);
    } finally {
      ck.close();
    }
  },
});
