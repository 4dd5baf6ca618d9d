/**
 * The weight arena (lib/model/tensor.ts): one memory for a small model; past the threshold, or
 * with `matrixMemoryBytes`, matrices in memories of their own, each matrix's values and scales in
 * one memory, vectors and buffers in the first.
 */
import { Arena, SINGLE_MEMORY_BYTES } from "../lib/model/tensor.ts";
import { assert, assertEquals } from "./_assert.ts";

Deno.test("arena: a small model keeps one memory", () => {
  const a = new Arena(1 << 20);
  const d = a.allocMatrix(64, 256, "q8");
  assertEquals(a.memories.length, 1);
  assertEquals(d.memory, undefined);
  assert(a.bufferOf(d) === a.buffer, "the first memory's buffer");
  assert(SINGLE_MEMORY_BYTES < 2 ** 32, "the threshold leaves room for buffers in 4 GiB");
});

Deno.test("arena: matrices in memories of their own fill each in turn, values beside scales", () => {
  const a = new Arena(1 << 20, 64, undefined, { matrixMemoryBytes: 4096 });
  const d1 = a.allocMatrix(4, 256, "q8"); // 1 KiB + 128 B of scales
  const d2 = a.allocMatrix(8, 256, "q8"); // 2 KiB + 256 B: still fits the first 4 KiB
  const d3 = a.allocMatrix(16, 256, "q8"); // 4 KiB + 512 B: more than a memory holds, its own
  const d4 = a.allocMatrix(2, 32, "f32");
  assertEquals([d1.memory, d2.memory, d3.memory, d4.memory], [1, 1, 2, 3]);
  for (const d of [d1, d2, d3]) {
    assert(d.scaleOffset >= d.offset + d.rows * d.cols, "scales after the values");
    assert(d.scaleOffset % 64 === 0 && d.offset % 64 === 0, "aligned");
  }
  assert(d2.offset >= d1.scaleOffset + 4 * 8 * 4, "no overlap in one memory");
  assertEquals(a.memories.length, 4);
  // views of each matrix lie over its own memory, which grew to hold it
  const m3 = a.view(d3);
  assert(m3.data.buffer === a.memories[2].buffer, "d3's view over the third memory");
  assertEquals(m3.data.byteLength, 16 * 256);
  m3.data.fill(7);
  assertEquals(new Int8Array(a.memories[1].buffer, d1.offset, 4).join(), "0,0,0,0");
  // vectors stay in the first memory, which grows on demand
  const v = a.f32(100_000);
  assert(v.buffer === a.memory.buffer, "a vector in the first memory");
  assert(a.size >= v.byteOffset + v.byteLength, "grown to hold it");
  const ends = (d2.scaleOffset + 8 * 8 * 4) + (d3.scaleOffset + 16 * 8 * 4) + (d4.offset + 256);
  assertEquals(a.usedTotal, ends + v.byteOffset + v.byteLength);
});
