/**
 * Filling the arena: each planned tensor read from the checkpoint (a block of rows at a time for
 * the large ones), transformed as the official package does at load, and stored in its dtype.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { f32ToBf16, f32ToF16, halfToFloat, toFloat32 } from "../formats/dtype.ts";
import { blockScales, GGML, toQ8 } from "../formats/ggml_quants.ts";
import { LoadSimd } from "../formats/simd.ts";
import { dequantizeQ4, dequantizeQ8, quantizeQ4, quantizeQ8 } from "../quant/block.ts";
import { type ModelSpec, squeezed } from "../spec/spec.ts";
import { layerNorm } from "./norm.ts";
import type { Arena, Matrix, MatrixDesc, StorageDType, TensorDesc } from "./tensor.ts";
import type { Plan } from "./_weights_plan.ts";

/** `blocks.0.ln0`'s weight and bias, folded into the embedding (absent: none). */
export interface Ln0 {
  w: Float32Array | undefined;
  b: Float32Array | undefined;
}

/** Reads `blocks.0.ln0` (the embedding's layer norm) when the checkpoint has it. */
export async function readLn0(ck: Checkpoint): Promise<Ln0> {
  const read = async (name: string) =>
    ck.tensors.has(name) ? toFloat32(await ck.read(name), ck.tensors.get(name)!.dtype) : undefined;
  return { w: await read("blocks.0.ln0.weight"), b: await read("blocks.0.ln0.bias") };
}

/** The checkpoint dtype whose bytes a storage dtype keeps as they are. */
const SAME: Partial<Record<StorageDType, string>> = { f32: "F32", bf16: "BF16", f16: "F16" };

/**
 * Reads, transforms and stores the planned tensor `p` into `arena`; adds what it became (one
 * entry, or five for RWKV-6's stacked `time_maa_w2`) to `tensors`. Returns, for a matrix read
 * in a form the layout's `finish` does not take (ggml blocks), the arrangement to run instead.
 */
export async function fillTensor(
  ck: Checkpoint,
  arena: Arena,
  spec: ModelSpec,
  p: Plan,
  ln0: Ln0,
  scratch: Scratch,
  tensors: Record<string, TensorDesc>,
): Promise<(() => void) | undefined> {
  const { name, info } = p;
  if (p.kind === "qmat") {
    const blocks = await readQ8_0Blocks(ck, arena, p);
    if (blocks) {
      tensors[name] = { kind: "mat", desc: blocks.desc };
      return blocks.arrange;
    }
  }
  if (p.kind === "lowrank" && ck.readTransposed) {
    // a container that stores the factor transposed (GGUF) gives our layout as it is
    const bytes = await ck.readTransposed(name, scratch.get(info.byteLength));
    if (bytes) {
      tensors[name] = { kind: "mat", desc: storeTransposed(arena, p, bytes, ck.path) };
      return undefined;
    }
  }
  if (p.kind === "qmat") {
    tensors[name] = { kind: "mat", desc: await loadStoredQuantized(ck, arena, p) };
  } else if (p.kind === "mat" && SAME[p.dtype] === info.dtype) {
    // Same type: bytes go straight from the file into the arena (f16 then checked as storeRows
    // checks it: no infinity or NaN, which the f16 products may not handle).
    const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
    const bytes = new Uint8Array(arena.bufferOf(d), d.offset, info.byteLength);
    await ck.read(name, bytes);
    if (p.dtype === "f16") {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, p.count);
      for (let i = 0; i < h.length; i++) {
        if ((h[i] & 0x7c00) === 0x7c00) {
          throw new FormatError(
            ck.path,
            name,
            `value at row ${
              Math.floor(i / p.cols)
            } is infinite or NaN in f16: load it as bf16 or f32`,
          );
        }
      }
    }
    tensors[name] = { kind: "mat", desc: d };
  } else if (p.kind === "emb") {
    const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
    const memory = arena.memories[d.memory ?? 0];
    await loadEmbedding(ck, arena.view(d), memory, p, ln0.w, ln0.b, scratch);
    tensors[name] = { kind: "mat", desc: d };
  } else if (p.kind === "mat") {
    // Large matrices: converted and stored a block of rows at a time, so neither the whole
    // stored tensor (with ranged reads) nor a float copy of it is ever in memory.
    const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
    const m = arena.view(d);
    const rowBytes = info.byteLength / p.rows;
    await eachRowBlock(ck, name, p.rows, rowBytes, scratch, undefined, (bytes, r0, r1) => {
      const values = toFloat32(bytes, info.dtype, scratch.floats((r1 - r0) * p.cols));
      storeRows(m, values, r0, r1, ck.path, name);
    });
    tensors[name] = { kind: "mat", desc: d };
  } else if (
    (p.kind === "lowrank" || p.kind === "lowrank3") && p.dtype !== "f32" &&
    SAME[p.dtype] === info.dtype
  ) {
    // 16-bit factors kept in their own type: transposed as they are (the same bits as through
    // f32 and back)
    let bytes = await ck.read(name);
    if (bytes.byteOffset % 2) bytes = bytes.slice();
    const all = new Uint16Array(bytes.buffer, bytes.byteOffset, p.count);
    const parts = p.kind === "lowrank3" ? squeezed(info.shape)[0] : 1;
    for (let i = 0; i < parts; i++) {
      const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
      const part = all.subarray(i * p.rows * p.cols, (i + 1) * p.rows * p.cols);
      transpose16(part, p.cols, p.rows, arena.view(d).data as Uint16Array, p.dtype, ck.path, name);
      tensors[p.kind === "lowrank3" ? `${name}.${i}` : name] = { kind: "mat", desc: d };
    }
  } else {
    const raw = toFloat32(await ck.read(name), info.dtype);
    if (p.kind === "vec") {
      const v = transformVector(spec, name, raw);
      const off = arena.alloc(v.length * 4);
      new Float32Array(arena.buffer, off, v.length).set(v);
      tensors[name] = { kind: "vec", offset: off, length: v.length };
    } else if (p.kind === "lowrank") {
      tensors[name] = {
        kind: "mat",
        desc: store(arena, transpose(raw, p.cols, p.rows), p, ck.path),
      };
    } else if (p.kind === "lowrank3") {
      const parts = squeezed(info.shape)[0];
      for (let i = 0; i < parts; i++) {
        const part = raw.subarray(i * p.rows * p.cols, (i + 1) * p.rows * p.cols);
        tensors[`${name}.${i}`] = {
          kind: "mat",
          desc: store(arena, transpose(part, p.cols, p.rows), p, ck.path),
        };
      }
    }
  }
  return undefined;
}

/**
 * A q8 matrix the checkpoint stores as ggml Q8_0 blocks ({@link Checkpoint.readBlocks}) into a
 * layout that arranges such blocks itself ({@link MatrixLayout.finishQ8_0}): the blocks read
 * straight into the matrix's room (they run 1/16 past its values, into its scale region), to be
 * arranged there in one pass; undefined (nothing read) for any other matrix.
 */
async function readQ8_0Blocks(
  ck: Checkpoint,
  arena: Arena,
  p: Plan,
): Promise<{ desc: MatrixDesc; arrange: () => void } | undefined> {
  const q8_0 = ck.blockQuantized?.get(p.name)?.q8_0;
  if (!q8_0 || !ck.readBlocks || p.dtype !== "q8" || !arena.layout.finishQ8_0) return undefined;
  const bytes = (p.rows * p.cols / 32) * 34;
  const room = arena.layout.bytes(p.rows, p.cols, "q8");
  if (bytes > room.data + room.scales) return undefined;
  const d = arena.allocMatrix(p.rows, p.cols, "q8");
  await ck.readBlocks(p.name, new Uint8Array(arena.bufferOf(d), d.offset, bytes));
  const arrange = () => {
    const memory = arena.memories[d.memory ?? 0], buffer = arena.bufferOf(d);
    if (arena.layout.finishQ8_0?.(buffer, d, memory, q8_0.scaleMul)) return;
    q8_0Rows(buffer, d, q8_0.scaleMul);
    arena.layout.finish(buffer, d, memory);
  };
  return { desc: d, arrange };
}

/**
 * Q8_0 blocks read at `d.offset` taken apart in place (TypeScript): integers row-major from
 * `d.offset`, scales (times `scaleMul`) from `d.scaleOffset`, rows past `d.rows` zero.
 */
export function q8_0Rows(buffer: ArrayBufferLike, d: MatrixDesc, scaleMul: number): void {
  const nb = (d.rows * d.cols) / 32, all = (d.storedRows * d.cols) / 32;
  const raw = new Uint8Array(buffer, d.offset, nb * 34);
  const scales = new Float32Array(all);
  blockScales(raw, GGML.Q8_0, nb * 32, scales, scaleMul);
  for (let b = 0; b < nb; b++) raw.copyWithin(b * 32, b * 34 + 2, b * 34 + 34);
  new Uint8Array(buffer, d.offset + nb * 32, (all - nb) * 32).fill(0);
  new Float32Array(buffer, d.scaleOffset, all).set(scales);
}

/** Vector transforms the official package applies at load, per version. */
function transformVector(spec: ModelSpec, name: string, v: Float32Array): Float32Array {
  const ver = spec.version;
  if (name.endsWith(".time_decay")) {
    if (ver === "4") return v.map((x) => -Math.exp(x));
    if (ver.startsWith("5")) return expandHeads(spec, v.map((x) => Math.exp(-Math.exp(x))));
    return v; // RWKV-6: the decay is data-dependent, exponentiated per token.
  }
  if (name.endsWith(".time_first") && ver !== "4") {
    return expandHeads(spec, v.map((x) => Math.exp(x)));
  }
  if (name.endsWith(".time_faaaa")) return expandHeads(spec, v);
  return v;
}

/** RWKV-5.0/5.1 store one decay per head: repeat it over the head's channels. */
function expandHeads(spec: ModelSpec, v: Float32Array): Float32Array {
  if (v.length !== spec.heads || spec.heads === spec.attDim) return v;
  const out = new Float32Array(spec.attDim);
  for (let h = 0; h < spec.heads; h++) {
    out.fill(v[h], h * spec.headSize, (h + 1) * spec.headSize);
  }
  return out;
}

/**
 * The embedding, a block of rows at a time: decoded to float (dequantized when the file stores it
 * quantized, passed through `p.roundTrip` when the model is quantized from a float source),
 * layer-normed with `blocks.0.ln0` as the official package does at load, stored in `m`'s dtype.
 * Each block is worked through in runs of rows small enough to stay in cache; the layer norm and
 * the bf16 rounding run in WebAssembly SIMD where available ({@link LoadSimd}: the same bits).
 */
async function loadEmbedding(
  ck: Checkpoint,
  m: Matrix,
  memory: WebAssembly.Memory,
  p: Plan,
  ln0w: Float32Array | undefined,
  ln0b: Float32Array | undefined,
  scratch: Scratch,
): Promise<void> {
  const { rows: nr, cols } = p;
  // ggml Q8_0 blocks (a GGUF's) read a block of rows at a time, each run taken apart here
  const q8_0 = p.stored?.quant === "q8" && ck.readBlocks
    ? ck.blockQuantized?.get(p.name)?.q8_0
    : undefined;
  const blocks = q8_0 &&
    ((offset: number, into: Uint8Array) => ck.readBlocks!(p.name, into, offset));
  // without ranged reads the tensor is read whole, integers before their scales (a GGUF gives
  // both in that one pass)
  const whole = ck.readRange || blocks
    ? undefined
    : await ck.read(p.name, scratch.get(p.info.byteLength));
  let scales: Float32Array | undefined;
  if (p.stored && !q8_0) {
    scales = toFloat32(await ck.read(p.stored.scale.name), p.stored.scale.dtype);
  }
  const simd = LoadSimd.for(memory);
  const run = Math.max(1, Math.floor(RUN_VALUES / cols)); // rows worked through at once
  const rowBytes = q8_0 ? (cols / 32) * 34 : p.info.byteLength / nr;
  await eachRowBlock(ck, p.name, nr, rowBytes, scratch, whole, (bytes, r0, r1) => {
    for (let a = r0; a < r1; a += run) {
      const b = Math.min(r1, a + run), n = (b - a) * cols;
      const part = bytes.subarray((a - r0) * rowBytes, (b - r0) * rowBytes);
      // in the SIMD scratch: ln0's weight and bias, then the rows (written afresh each run:
      // other loads may use the scratch between two awaits)
      const at = 8 * cols, q = at + n * 4, qs = q + n; // rows, then a q8 run and its scales
      const raw = qs + n / 8; // (Q8_0 blocks: the run's blocks)
      simd?.reserve(raw + (q8_0 ? part.length : 0));
      const rows = simd ? simd.floats(at, n) : scratch.floats(n);
      if (q8_0 && simd) {
        simd.bytes(raw, part.length).set(part);
        simd.dequantQ8_0(raw, at, n, q8_0.scaleMul);
      } else if (q8_0) {
        const ints = new Int8Array(n), s = new Float32Array(n / 32);
        toQ8(part, GGML.Q8_0, n, ints);
        blockScales(part, GGML.Q8_0, n, s, q8_0.scaleMul);
        dequantizeQ8(ints, s, rows);
      } else if (p.stored) {
        const s = scales!.subarray((a * cols) / 32, (b * cols) / 32);
        if (simd && p.stored.quant === "q8") {
          simd.bytes(q, n).set(part);
          simd.floats(qs, n / 32).set(s);
          simd.dequantQ8(q, qs, at, n);
        } else if (p.stored.quant === "q8") {
          dequantizeQ8(new Int8Array(part.buffer, part.byteOffset, part.length), s, rows);
        } else dequantizeQ4(part, s, rows);
      } else {
        toFloat32(part, p.info.dtype, rows);
        if (p.roundTrip === "q8") {
          const r = quantizeQ8(rows);
          dequantizeQ8(r.q, r.scales, rows);
        } else if (p.roundTrip === "q4") {
          const r = quantizeQ4(rows);
          dequantizeQ4(r.q, r.scales, rows);
        }
      }
      if (ln0w && ln0b) {
        if (simd) {
          simd.floats(0, cols).set(ln0w);
          simd.floats(4 * cols, cols).set(ln0b);
          simd.normRows(at, 0, 4 * cols, b - a, cols, 1e-5);
        } else {
          for (let r = 0; r < b - a; r++) layerNorm(rows, ln0w, ln0b, rows, cols, r * cols);
        }
      }
      if (simd && m.dtype === "bf16") simd.f32ToBf16(at, m.offset + a * cols * 2, n);
      else storeRows(m, rows, a, b, ck.path, p.name);
    }
  }, blocks || undefined);
}

/** Values of the embedding worked through at once (1 MiB of f32: in cache). */
const RUN_VALUES = 1 << 18;

/**
 * Reusable buffers that grow to the largest request: one for stored bytes, one for their
 * float values (fresh arrays per block would pile up outside the JS heap until a GC).
 */
export class Scratch {
  #buf = new Uint8Array(0);
  #floats = new Float32Array(0);
  get(n: number): Uint8Array {
    if (this.#buf.length < n) this.#buf = new Uint8Array(n);
    return this.#buf.subarray(0, n);
  }
  floats(n: number): Float32Array {
    if (this.#floats.length < n) this.#floats = new Float32Array(n);
    return this.#floats.subarray(0, n);
  }
}

/** Bytes of stored rows a streamed read brings in at once. */
const BLOCK_BYTES = 1 << 22;

/**
 * Hands the stored bytes of a tensor's rows to `use`, a block of rows at a time. With ranged
 * reads only one block is ever in memory; without, the tensor is read once into `scratch` (or
 * was: `read`).
 */
async function eachRowBlock(
  ck: Checkpoint,
  name: string,
  rows: number,
  rowBytes: number,
  scratch: Scratch,
  read: Uint8Array | undefined,
  use: (bytes: Uint8Array, r0: number, r1: number) => void,
  readPart = ck.readRange &&
    ((offset: number, into: Uint8Array) => ck.readRange!(name, offset, into)),
): Promise<void> {
  const step = Math.max(1, Math.floor(BLOCK_BYTES / rowBytes));
  const whole = read ??
    (readPart ? undefined : await ck.read(name, scratch.get(rows * rowBytes)));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const bytes = whole
      ? whole.subarray(r0 * rowBytes, r1 * rowBytes)
      : await readPart!(r0 * rowBytes, scratch.get((r1 - r0) * rowBytes));
    use(bytes, r0, r1);
  }
}

/**
 * A matrix stored as integers + block scales: in its own scheme the bytes go straight into
 * the arena and only the scales are widened to f32; in any other dtype it is dequantized first.
 */
async function loadStoredQuantized(ck: Checkpoint, arena: Arena, p: Plan): Promise<MatrixDesc> {
  const { quant, scale } = p.stored!;
  const nb = (p.rows * p.cols) / 32;
  const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
  const m = arena.view(d);
  if (p.dtype === quant) {
    // integers first: a container that interleaves scales with them (GGUF) gives both in one pass
    await ck.read(p.name, new Uint8Array(arena.bufferOf(d), d.offset, p.info.byteLength));
    m.scales.subarray(0, nb).set(toFloat32(await ck.read(scale.name), scale.dtype));
    return d;
  }
  const scales = toFloat32(await ck.read(scale.name), scale.dtype);
  const raw = await ck.read(p.name);
  const values = quant === "q8"
    ? dequantizeQ8(new Int8Array(raw.buffer, raw.byteOffset, raw.length), scales)
    : dequantizeQ4(raw, scales);
  storeRows(m, values, 0, p.rows, ck.path, p.name);
  return d;
}

/** `src` (rows × cols) transposed. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  return transposeInto(src, rows, cols, new Float32Array(rows * cols));
}

/** `src` (rows × cols) transposed into `out`, in tiles of 32 × 32 so that both stay in cache. */
function transposeInto<T extends Float32Array | Uint16Array>(
  src: T,
  rows: number,
  cols: number,
  out: T,
): T {
  const tile = 32;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[r * cols + c];
      }
    }
  }
  return out;
}

/**
 * `src` (rows × cols of bf16 or f16) transposed into `out` as {@link transpose} and
 * {@link storeRows} would store it: a bf16 NaN made quiet, an f16 infinity or NaN refused.
 */
function transpose16(
  src: Uint16Array,
  rows: number,
  cols: number,
  out: Uint16Array,
  dtype: StorageDType,
  file: string,
  tensor: string,
): void {
  transposeInto(src, rows, cols, out);
  check16(out, dtype, rows, file, tensor);
}

/** A 16-bit matrix stored as {@link storeRows} would: a bf16 NaN made quiet, f16's refused. */
function check16(
  out: Uint16Array,
  dtype: StorageDType,
  cols: number,
  file: string,
  tensor: string,
): void {
  // two values a step: most matrices have neither a NaN nor an infinity (then nothing changes)
  const pairs = out.byteOffset % 4 ? 0 : out.length >> 1;
  const words = new Uint32Array(out.buffer, out.byteOffset, pairs);
  const mask = dtype === "bf16" ? 0x7f80 : 0x7c00;
  let i = 0;
  for (; i < pairs; i++) {
    const w = words[i];
    if ((w & mask) === mask || ((w >>> 16) & mask) === mask) break;
  }
  for (i *= 2; i < out.length; i++) {
    const h = out[i];
    if (dtype === "bf16") {
      if ((h & 0x7fff) > 0x7f80) out[i] = h | 0x40;
    } else if ((h & 0x7c00) === 0x7c00) {
      throw new FormatError(
        file,
        tensor,
        `value ${halfToFloat(h)} at row ${Math.floor(i / cols)} cannot be stored as f16 ` +
          "(infinite, NaN or beyond ±65504): load it as bf16 or f32",
      );
    }
  }
}

/**
 * A low-rank factor read already transposed (`bytes`: p.rows × p.cols, the checkpoint's dtype)
 * stored as {@link transpose} and {@link storeRows} would store it.
 */
function storeTransposed(arena: Arena, p: Plan, bytes: Uint8Array, file: string): MatrixDesc {
  const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
  const m = arena.view(d);
  if (SAME[p.dtype] !== p.info.dtype) {
    storeRows(m, toFloat32(bytes, p.info.dtype), 0, p.rows, file, p.name);
  } else if (p.dtype === "f32") {
    new Uint8Array(arena.bufferOf(d), d.offset, bytes.length).set(bytes);
  } else {
    new Uint8Array(arena.bufferOf(d), d.offset, bytes.length).set(bytes);
    check16(m.data as Uint16Array, p.dtype, p.cols, file, p.name);
  }
  return d;
}

/**
 * Stores rows [r0, r1) of a matrix from their float values, in the matrix's dtype. f16 storage
 * refuses infinities and NaNs (also values past ±65504, which round to infinity): the f16
 * products may convert without handling them, and such a model could only produce NaN anyway.
 */
function storeRows(
  m: Matrix,
  values: Float32Array,
  r0: number,
  r1: number,
  file: string,
  tensor: string,
): void {
  const c = m.cols, a = r0 * c, b = r1 * c;
  switch (m.dtype) {
    case "f32":
      (m.data as Float32Array).set(values, a);
      break;
    case "bf16":
      f32ToBf16(values, (m.data as Uint16Array).subarray(a, b));
      break;
    case "f16": {
      const h = (m.data as Uint16Array).subarray(a, b);
      f32ToF16(values, h);
      for (let i = 0; i < h.length; i++) {
        if ((h[i] & 0x7c00) === 0x7c00) {
          throw new FormatError(
            file,
            tensor,
            `value ${values[i]} at row ${r0 + Math.floor(i / c)} cannot be stored as f16 ` +
              "(infinite, NaN or beyond ±65504): load it as bf16 or f32",
          );
        }
      }
      break;
    }
    case "q8":
      quantizeQ8(values, (m.data as Int8Array).subarray(a, b), m.scales.subarray(a / 32, b / 32));
      break;
    case "q4":
      quantizeQ4(
        values,
        (m.data as Uint8Array).subarray(a / 2, b / 2),
        m.scales.subarray(a / 32, b / 32),
      );
      break;
  }
}

function store(arena: Arena, values: Float32Array, p: Plan, file: string): MatrixDesc {
  const d = arena.allocMatrix(p.rows, p.cols, p.dtype);
  storeRows(arena.view(d), values, 0, p.rows, file, p.name);
  return d;
}
