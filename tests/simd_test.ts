/**
 * The load-time SIMD helpers (lib/formats/simd.ts) give exactly the bytes of the TypeScript they
 * stand in for, on random data of awkward shapes: the kernels' q8/q4 layout (with a matrix in a
 * memory of its own, past 2 GiB offsets), the embedding's layer norm, f32 → bf16 with NaN,
 * infinities and subnormals, and ggml Q8_0/Q4_0 blocks with every class of f16 scale. The
 * committed `_simd_wasm.ts` is what `simd.wat` builds to.
 */
import { assert, assertEquals } from "./_assert.ts";
import { LoadSimd } from "../lib/formats/simd.ts";
import { buildSimd, simdModuleText } from "../lib/formats/simd_build.ts";
import {
  bandRows,
  finishMatrix,
  finishQ8_0Blocks,
  KERNEL_LAYOUT,
  paddedRows,
} from "../lib/backend/wasm/layout.ts";
import { q8_0Rows } from "../lib/model/_weights_fill.ts";
import { Arena, type StorageDType } from "../lib/model/tensor.ts";
import { normTS } from "../lib/model/norm.ts";
import { f32ToBf16 } from "../lib/formats/dtype.ts";
import { blockScales, GGML, toQ4, toQ8 } from "../lib/formats/ggml_quants.ts";
import { makeRng } from "../lib/sample.ts";
import { dequantizeQ8 } from "../lib/quant/block.ts";

const rng = makeRng(7);
const randomBytes = (a: Uint8Array) => {
  for (let i = 0; i < a.length; i++) a[i] = Math.floor(rng() * 256);
};

Deno.test("simd: _simd_wasm.ts is simd.wat's build", async () => {
  const committed = await Deno.readTextFile(
    new URL("../lib/formats/_simd_wasm.ts", import.meta.url),
  );
  assertEquals(committed, simdModuleText(await buildSimd()), "run deno task build:simd");
  assert(LoadSimd.create(), "this runtime compiles the SIMD helpers");
});

Deno.test("simd: q8/q4 layout in WebAssembly equals the TypeScript, byte for byte", () => {
  // 13 × 5216: q4 in three column panels; 141 × 2624: two panels in three blocks of rows
  const shapes: [number, number][] = [
    [1, 32],
    [5, 64],
    [8, 96],
    [13, 2560],
    [37, 160],
    [64, 32],
    [13, 5216],
    [141, 2624],
  ];
  for (const dtype of ["q8", "q4"] as StorageDType[]) {
    for (const [rows, cols] of shapes) {
      // two arenas filled alike: one finished in TypeScript, one in WebAssembly
      const arenas = [0, 1].map(() =>
        new Arena(1 << 20, 64, KERNEL_LAYOUT, { matrixMemoryBytes: 1 << 20 })
      );
      const descs = arenas.map((a) => {
        a.allocMatrix(3, 32, dtype); // the matrix under test not at the memory's start
        return a.allocMatrix(rows, cols, dtype);
      });
      const pr = paddedRows(rows, dtype), nb = cols / 32;
      const valueBytes = dtype === "q8" ? pr * cols : pr * cols / 2;
      const src = new Uint8Array(valueBytes);
      randomBytes(src);
      src.fill(0, dtype === "q8" ? rows * cols : rows * cols / 2); // padding rows zero
      const scales = new Float32Array(pr * nb).map(() => rng() - 0.5);
      for (let k = 0; k < 2; k++) {
        const d = descs[k], buf = arenas[k].bufferOf(d);
        new Uint8Array(buf, d.offset, valueBytes).set(src);
        new Float32Array(buf, d.scaleOffset, pr * nb).set(scales);
        finishMatrix(buf, d, k ? arenas[k].memories[d.memory!] : undefined);
      }
      const region = (k: number) => {
        const d = descs[k], end = d.scaleOffset + KERNEL_LAYOUT.bytes(rows, cols, dtype).scales;
        return new Uint8Array(arenas[k].bufferOf(d), d.offset, end - d.offset);
      };
      assertEquals(
        region(1),
        region(0),
        `${dtype} ${rows}×${cols} (band ${bandRows(rows, dtype)})`,
      );
    }
  }
});

Deno.test("simd: layout at offsets past 2 GiB (unsigned addresses)", () => {
  // sparse: the memory's pages are never touched but the matrix's
  const mem = new WebAssembly.Memory({ initial: 40000, maximum: 65536, shared: true });
  const simd = LoadSimd.for(mem)!;
  const rows = 8, cols = 64, off = 2 ** 31 + 4096, scaleOff = off + rows * cols;
  const buf = mem.buffer;
  const plain = new ArrayBuffer(rows * cols + rows * 2 * 6);
  const bytes = new Uint8Array(plain, 0, rows * cols);
  randomBytes(bytes);
  new Uint8Array(buf, off, rows * cols).set(bytes);
  const s = new Float32Array(rows * 2).map(() => rng());
  new Float32Array(buf, scaleOff, rows * 2).set(s);
  new Float32Array(plain, rows * cols, rows * 2).set(s);
  const d = {
    rows,
    cols,
    dtype: "q8" as const,
    offset: off,
    scaleOffset: scaleOff,
    storedRows: rows,
  };
  simd.finishQ8(off, scaleOff, scaleOff + rows * 2 * 4, rows, cols);
  finishMatrix(plain, { ...d, offset: 0, scaleOffset: rows * cols });
  assertEquals(new Uint8Array(buf, off, plain.byteLength), new Uint8Array(plain));
});

Deno.test("simd: Q8_0 blocks arranged in place equal their integers and scales laid out", () => {
  // f16 scales of every class: ±0, subnormal, normal, largest, ±infinity, NaN
  const halves = [0, 0x8000, 1, 0x83ff, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x7c01, 0x7e00, 0xfd01];
  const shapes: [number, number][] = [[1, 32], [5, 64], [8, 96], [13, 2560], [37, 160], [64, 32]];
  for (const [rows, cols] of shapes) {
    for (const mul of [1, 4]) {
      const nb = (rows * cols) / 32, raw = new Uint8Array(nb * 34);
      randomBytes(raw);
      halves.forEach((h, i) => raw.set([h & 255, h >> 8], ((i * 7) % nb) * 34));
      // three arenas: the blocks arranged in WebAssembly; taken apart in TypeScript then
      // finished in TypeScript; and the integers and scales written row-major by toQ8 and
      // blockScales, finished in TypeScript
      const arenas = [0, 1, 2].map(() =>
        new Arena(1 << 20, 64, KERNEL_LAYOUT, { matrixMemoryBytes: 1 << 20 })
      );
      const descs = arenas.map((a) => {
        a.allocMatrix(3, 32, "q8"); // the matrix under test not at the memory's start
        return a.allocMatrix(rows, cols, "q8");
      });
      const pr = paddedRows(rows, "q8");
      for (let k = 0; k < 3; k++) {
        const d = descs[k], buf = arenas[k].bufferOf(d);
        if (k < 2) new Uint8Array(buf, d.offset, raw.length).set(raw);
        if (k === 0) assert(finishQ8_0Blocks(d, arenas[k].memories[d.memory!], mul));
        if (k === 1) q8_0Rows(buf, d, mul);
        if (k === 2) {
          toQ8(raw, GGML.Q8_0, nb * 32, new Int8Array(buf, d.offset, nb * 32));
          blockScales(raw, GGML.Q8_0, nb * 32, new Float32Array(buf, d.scaleOffset, nb), mul);
        }
        if (k) finishMatrix(buf, d);
      }
      const part = (k: number) => {
        const d = descs[k], b = arenas[k].bufferOf(d);
        return [
          new Uint8Array(b, d.offset, pr * cols),
          new Uint8Array(b, d.scaleOffset, KERNEL_LAYOUT.bytes(rows, cols, "q8").scales),
        ];
      };
      for (const k of [1, 2]) {
        assertEquals(part(0)[0], part(k)[0], `values ${rows}×${cols} ×${mul} (${k})`);
        assertEquals(part(0)[1], part(k)[1], `scales ${rows}×${cols} ×${mul} (${k})`);
      }
    }
  }
  // at offsets past 2 GiB (unsigned addresses): sparse, only the matrix's pages touched
  const mem = new WebAssembly.Memory({ initial: 40000, maximum: 65536, shared: true });
  const rows = 6, cols = 64, nb = (rows * cols) / 32, off = 2 ** 31 + 4096;
  const d = {
    rows,
    cols,
    dtype: "q8" as const,
    offset: off,
    scaleOffset: off + 8 * cols,
    storedRows: 8,
  };
  const raw = new Uint8Array(nb * 34);
  randomBytes(raw);
  const plain = new ArrayBuffer(8 * cols + 8 * 2 * 6);
  new Uint8Array(mem.buffer, off, raw.length).set(raw);
  new Uint8Array(plain, 0, raw.length).set(raw);
  assert(finishQ8_0Blocks(d, mem, 2));
  q8_0Rows(plain, { ...d, offset: 0, scaleOffset: 8 * cols }, 2);
  finishMatrix(plain, { ...d, offset: 0, scaleOffset: 8 * cols });
  assertEquals(new Uint8Array(mem.buffer, off, plain.byteLength), new Uint8Array(plain));
});

Deno.test("simd: layer norm of rows equals normTS bit for bit", () => {
  const simd = LoadSimd.create()!;
  for (const [rows, n] of [[1, 8], [3, 7], [4, 64], [6, 2560], [9, 33]]) {
    const x = new Float32Array(rows * n).map(() => (rng() - 0.5) * 10 ** Math.floor(rng() * 6 - 3));
    const w = new Float32Array(n).map(() => rng() * 2),
      b = new Float32Array(n).map(() => rng() - 0.5);
    const want = new Float32Array(rows * n);
    normTS(x, w, b, want, n, rows, 1, 1e-5);
    simd.reserve((rows + 2) * n * 4);
    simd.floats(0, rows * n).set(x);
    simd.floats(rows * n * 4, n).set(w);
    simd.floats((rows + 1) * n * 4, n).set(b);
    simd.normRows(0, rows * n * 4, (rows + 1) * n * 4, rows, n, 1e-5);
    const got = simd.floats(0, rows * n);
    assertEquals(new Uint32Array(got.slice().buffer), new Uint32Array(want.buffer), `${rows}×${n}`);
  }
});

Deno.test("simd: f32 → bf16 equals f32ToBf16 (NaN, infinities, ties, subnormals)", () => {
  const n = 1003;
  const bits = new Uint32Array(n).map(() => Math.floor(rng() * 2 ** 32));
  bits.set([
    0x7fc00000,
    0xffc00001,
    0x7f800000,
    0xff800000,
    0x7f800001,
    0x3f808000,
    0x3f818000,
    0x00000001,
    0x807fffff,
    0x7f7fffff,
    0xff7fffff,
    0,
  ]);
  const simd = LoadSimd.create()!;
  simd.reserve(n * 4);
  simd.bytes(0, n * 4).set(new Uint8Array(bits.buffer));
  simd.f32ToBf16(0, 64, n);
  const got = new Uint16Array(simd.target.buffer, 64, n).slice();
  assertEquals(got, f32ToBf16(new Float32Array(bits.buffer)));
});

Deno.test("simd: ggml Q8_0/Q4_0 blocks split as toQ8/toQ4 and blockScales do", () => {
  const simd = LoadSimd.create()!;
  for (const [type, size] of [[GGML.Q8_0, 34], [GGML.Q4_0, 18]]) {
    const k = 300, raw = new Uint8Array(k * size);
    randomBytes(raw);
    // f16 scales of every class: ±0, subnormal, normal, largest, ±infinity, NaN
    const halves = [0x0000, 0x8000, 0x0001, 0x83ff, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0xfd01];
    halves.forEach((h, i) => {
      raw[i * size] = h & 255;
      raw[i * size + 1] = h >> 8;
    });
    for (const mul of [1, 4]) {
      const qBytes = type === GGML.Q8_0 ? k * 32 : k * 16;
      const wantQ = new Uint8Array(qBytes), wantS = new Float32Array(k);
      if (type === GGML.Q8_0) toQ8(raw, type, k * 32, new Int8Array(wantQ.buffer));
      else toQ4(raw, k * 32, wantQ);
      blockScales(raw, type, k * 32, wantS, mul);
      simd.reserve(raw.length + qBytes + k * 4 + 64);
      simd.bytes(0, raw.length).set(raw);
      const q = raw.length, s = q + qBytes;
      simd.splitBlocks(0, k, size, q, s, mul);
      assertEquals(simd.bytes(q, qBytes).slice(), wantQ, `type ${type} integers`);
      assertEquals(
        new Uint32Array(simd.bytes(s, k * 4).slice().buffer),
        new Uint32Array(wantS.buffer),
        `type ${type} scales ×${mul}`,
      );
    }
  }
});

Deno.test("simd: ggml blocks taken apart in place equal the split into a scratch", () => {
  for (const size of [34, 18]) {
    const k = 77, ints = size - 2, at = 4096 + 3 * 64;
    const mem = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
    const raw = new Uint8Array(k * size);
    randomBytes(raw);
    new Uint8Array(mem.buffer, at, raw.length).set(raw);
    const simd = LoadSimd.for(mem)!, ref = LoadSimd.create()!;
    simd.reserve(k * 4);
    simd.compactBlocks(at, k, size, 0, 2);
    const q = 4096, s = 8192;
    ref.reserve(s + k * 4);
    ref.bytes(0, raw.length).set(raw);
    ref.splitBlocks(0, k, size, q, s, 2);
    assertEquals(new Uint8Array(mem.buffer, at, k * ints), ref.bytes(q, k * ints));
    assertEquals(simd.floats(0, k), ref.floats(s, k));
  }
});

Deno.test("simd: Q8_0 blocks dequantized in one pass equal split then dequantized", () => {
  const k = 300, n = k * 32, raw = new Uint8Array(k * 34);
  randomBytes(raw);
  const halves = [0, 0x8000, 1, 0x83ff, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x7c01, 0x7e00, 0xfd01];
  halves.forEach((h, i) => raw.set([h & 255, h >> 8], i * 34 * 7));
  const simd = LoadSimd.create()!;
  for (const mul of [1, 4]) {
    const q = raw.length, s = q + n, a = s + k * 4, b = a + n * 4;
    simd.reserve(b + n * 4);
    simd.bytes(0, raw.length).set(raw);
    simd.splitBlocks(0, k, 34, q, s, mul);
    simd.dequantQ8(q, s, a, n);
    simd.dequantQ8_0(0, b, n, mul);
    assertEquals(
      new Uint32Array(simd.floats(b, n).slice().buffer),
      new Uint32Array(simd.floats(a, n).slice().buffer),
      `×${mul}`,
    );
  }
});

Deno.test("simd: q8 dequantization equals dequantizeQ8 bit for bit", () => {
  const n = 32 * 41, q = new Int8Array(n), s = new Float32Array(n / 32);
  randomBytes(new Uint8Array(q.buffer));
  s.forEach((_, i) => s[i] = (rng() - 0.5) * 2 ** Math.floor(rng() * 60 - 40));
  s.set([1e-45, -3.4e38, 0, -0, 1 / 3]); // subnormal, huge, zeros, inexact products
  const simd = LoadSimd.create()!;
  simd.reserve(n * 6);
  simd.bytes(0, n).set(new Uint8Array(q.buffer));
  simd.floats(n, n / 32).set(s);
  simd.dequantQ8(0, n, 2 * n, n);
  const want = dequantizeQ8(q, s);
  assertEquals(new Uint32Array(simd.floats(2 * n, n).slice().buffer), new Uint32Array(want.buffer));
});
