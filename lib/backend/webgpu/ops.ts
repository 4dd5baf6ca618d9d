/**
 * The backend's {@link Ops} recorded as WebGPU dispatches.
 *
 * Memory: one storage buffer `buf` holds the weight vectors, every scratch buffer, the pass's
 * tokens and segment table, and a pool of state slots; matrices live in their own buffers, split
 * by rows into parts no larger than the device's largest storage binding. A buffer handle
 * ({@link GpuBuf}) is a range of `buf`. The version's forward pass records its dispatches;
 * {@link GpuOps.submit} encodes them into one compute pass, submits once and reads back only
 * what it is asked for.
 * @module
 */

import type {
  Activation,
  Ops,
  Product,
  Segment,
  ShiftForm,
  V7TimeMixArgs,
  Wkv4Args,
} from "../../model/ops.ts";
import { UsageError } from "../../errors.ts";
import type { Gpu, ShaderModuleName } from "./device.ts";
import {
  type GpuBuf,
  type GpuMatrix,
  type MatrixPart,
  rowBytesOf,
  type RowMajorMatrix,
} from "./_matrices.ts";

export { fileLayout, type GpuBuf, type GpuMatrix, type RowMajorMatrix } from "./_matrices.ts";

const SLOT = 256; // bytes of parameters per dispatch (the uniform dynamic-offset alignment)
const ALIGN = 64; // elements: ranges of `buf` start on 256-byte boundaries
const WG = 64; // invocations per workgroup of every kernel

interface Command {
  pipeline: GPUComputePipeline;
  /** The matrix part it reads (its bind group), or none: the ops bind group. */
  part: MatrixPart | undefined;
  params: Uint32Array;
  groups: number;
}

const f32Bits = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];

/**
 * {@link Ops} on a WebGPU device. Set-up: {@link GpuOps.vector} and {@link GpuOps.addMatrix} for
 * the weights, `buffer` for scratch (and states), then {@link GpuOps.seal}; afterwards each pass
 * is recorded (after {@link GpuOps.beginPass}) and {@link GpuOps.submit}ted.
 * @example
 * ```ts
 * import { openGpu } from "./device.ts";
 * const ops = new GpuOps(await openGpu(), 64);
 * const x = ops.buffer(64), y = ops.buffer(64);
 * ops.seal();
 * ops.write(x, new Float32Array(64).fill(1));
 * ops.act("tanh", x, y, 64);
 * const [out] = await ops.submit([y]);
 * ```
 */
export class GpuOps implements Ops<GpuBuf, GpuMatrix> {
  /** The device. */
  readonly gpu: Gpu;
  /** Largest token count of a pass. */
  readonly maxT: number;
  /** Largest bytes of one matrix part (the device's binding limit unless set lower in tests). */
  readonly maxPartBytes: number;
  #top = 0;
  #work: GPUBuffer | undefined;
  #opsBind: GPUBindGroup | undefined;
  #params: GPUBuffer | undefined;
  #readback: GPUBuffer | undefined;
  #cmds: Command[] = [];
  #writes: [number, Float32Array<ArrayBuffer>][] = [];
  #pending: [number, Float32Array<ArrayBuffer>][] = []; // weight vectors until seal
  #owned: GPUBuffer[] = [];
  #matrices: GpuMatrix[] = [];
  #table: GpuBuf; // segment of each row, then 4 values per segment
  #tokens: GpuBuf;
  #segs: readonly Segment<GpuBuf>[] | undefined;
  #embedded: Float32Array | undefined;

  constructor(gpu: Gpu, maxT: number, options: { maxPartBytes?: number } = {}) {
    this.gpu = gpu;
    this.maxT = maxT;
    this.maxPartBytes = Math.min(options.maxPartBytes ?? Infinity, gpu.maxBinding);
    this.#table = this.buffer(maxT * 5);
    this.#tokens = this.buffer(maxT);
  }

  /** A zeroed f32 buffer of `n` values on the device (before {@link GpuOps.seal}). */
  buffer(n: number): GpuBuf {
    if (this.#work) throw new Error("GpuOps: buffers are made before seal()");
    const at = this.#top;
    this.#top = at + Math.ceil(Math.max(n, 1) / ALIGN) * ALIGN;
    return { at, length: n };
  }

  /** A weight vector: a buffer holding `values` from the start. */
  vector(values: Float32Array): GpuBuf {
    const b = this.buffer(values.length);
    this.#pending.push([b.at, Float32Array.from(values)]);
    return b;
  }

  /** Uploads a matrix, split by rows where it exceeds one storage binding. */
  addMatrix(m: RowMajorMatrix): GpuMatrix {
    const { dtype, rows, cols } = m;
    const quant = dtype === "q8" || dtype === "q4";
    if (cols % (quant ? 32 : 8) !== 0) {
      throw new Error(`the WebGPU kernels need ${quant ? 32 : 8} | cols (${dtype}, ${cols} cols)`);
    }
    const rowBytes = rowBytesOf(dtype, cols), nb = cols / 32;
    const perPart = Math.max(1, Math.floor(this.maxPartBytes / rowBytes));
    const parts: MatrixPart[] = [];
    let bytes = 0;
    for (let row0 = 0; row0 < rows; row0 += perPart) {
      const n = Math.min(perPart, rows - row0);
      const buffers = [this.#upload(m.data.subarray(row0 * rowBytes, (row0 + n) * rowBytes))];
      if (quant) {
        const s = m.scales!.subarray(row0 * nb, (row0 + n) * nb);
        buffers.push(this.#upload(new Uint8Array(s.buffer, s.byteOffset, s.byteLength)));
      }
      for (const b of buffers) bytes += b.size;
      parts.push({ row0, rows: n, buffers, bind: undefined });
    }
    const g: GpuMatrix = { dtype, rows, cols, parts, bytes, bf16Scales: m.scaleType === "bf16" };
    this.#matrices.push(g);
    if (this.#work) this.#bindMatrix(g);
    return g;
  }

  #upload(bytes: Uint8Array): GPUBuffer {
    const b = this.gpu.device.createBuffer({
      size: Math.max(16, Math.ceil(bytes.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE,
      mappedAtCreation: true,
    });
    new Uint8Array(b.getMappedRange()).set(bytes);
    b.unmap();
    this.#owned.push(b);
    return b;
  }

  /** Creates `buf` and the bind groups once every buffer is known. */
  seal(): void {
    const { device } = this.gpu;
    const size = Math.max(this.#top, ALIGN) * 4;
    if (size > this.gpu.maxBinding) {
      throw new UsageError(
        `the WebGPU backend needs ${size} bytes of buffers and states, over the device's ` +
          `${this.gpu.maxBinding}-byte storage binding: choose a smaller chunk`,
      );
    }
    this.#work = device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    this.#owned.push(this.#work);
    for (const [o, v] of this.#pending) device.queue.writeBuffer(this.#work, o * 4, v);
    this.#pending = [];
    this.#ensureParams(256);
    for (const m of this.#matrices) this.#bindMatrix(m);
  }

  #bindMatrix(m: GpuMatrix): void {
    const quant = m.dtype === "q8" || m.dtype === "q4";
    for (const p of m.parts) {
      p.bind = this.gpu.device.createBindGroup({
        layout: this.gpu.matrixLayout(quant),
        entries: [
          { binding: 0, resource: { buffer: this.#params!, size: SLOT } },
          { binding: 1, resource: { buffer: this.#work! } },
          ...p.buffers.map((buffer, i) => ({ binding: 2 + i, resource: { buffer } })),
        ],
      });
    }
  }

  #ensureParams(dispatches: number): void {
    if (this.#params && this.#params.size >= dispatches * SLOT) return;
    this.#params?.destroy();
    this.#params = this.gpu.device.createBuffer({
      size: dispatches * SLOT * 2,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#opsBind = this.gpu.device.createBindGroup({
      layout: this.gpu.opsLayout,
      entries: [
        { binding: 0, resource: { buffer: this.#params, size: SLOT } },
        { binding: 1, resource: { buffer: this.#work! } },
      ],
    });
    for (const m of this.#matrices) this.#bindMatrix(m);
  }

  /** Queues `values` to be written into `dst` (from its start) before the next pass. */
  write(dst: GpuBuf, values: Float32Array): void {
    if (values.length > dst.length) throw new RangeError("write past the end of a buffer");
    this.#writes.push([dst.at, Float32Array.from(values)]);
  }

  /**
   * Starts recording a pass over `tokens` in `segs` (the segments its segment-aware operations
   * must be given): writes the segment table.
   */
  beginPass(tokens: ArrayLike<number>, segs: readonly Segment<GpuBuf>[]): void {
    if (tokens.length > this.maxT) throw new RangeError(`a pass of ${tokens.length} > maxT`);
    this.#segs = segs;
    const maxT = this.maxT, table = new Float32Array(maxT + segs.length * 4);
    segs.forEach((s, i) => {
      table.fill(i, s.start, s.start + s.length);
      const base = s.state[0].at;
      table.set([s.start, s.length, Math.floor(base / 65536), base % 65536], maxT + i * 4);
    });
    this.write(this.#table, table);
  }

  /** The offset of state tensor `slot` within a state, checking `segs` is this pass's. */
  #slot(segs: readonly Segment<GpuBuf>[], slot: number): number {
    if (segs !== this.#segs) throw new Error("GpuOps: segments other than beginPass()'s");
    return segs[0].state[slot].at - segs[0].state[0].at;
  }

  #op(entry: string, threads: number, params: number[], perGroup = WG): void {
    this.#push(this.gpu.pipeline("ops", entry), undefined, params, Math.ceil(threads / perGroup));
  }

  #push(pipe: GPUComputePipeline, part: MatrixPart | undefined, p: number[], groups: number) {
    if (groups <= 0) return;
    const params = new Uint32Array(32);
    params.set(p);
    params[30] = this.#table.at;
    params[31] = this.maxT;
    this.#cmds.push({ pipeline: pipe, part, params, groups });
  }

  embed(emb: GpuMatrix, tokens: ArrayLike<number>, out: GpuBuf): void {
    // the ids go into the tokens region before the pass: one set of them per pass
    const ids = Float32Array.from(tokens);
    if (this.#embedded && this.#embedded.join() !== ids.join()) {
      throw new Error("GpuOps: one embedding look-up per pass");
    }
    this.#embedded = ids;
    this.write(this.#tokens, ids);
    const T = tokens.length, groups = emb.cols / 8;
    const pipe = this.gpu.pipeline(emb.dtype as ShaderModuleName, "embed");
    for (const p of emb.parts) {
      const params = [this.#tokens.at, T, p.rows, emb.cols, 0, 0, p.row0, 0, out.at];
      params[9] = emb.bf16Scales ? 1 : 0;
      this.#push(pipe, p, params, Math.ceil((T * groups) / WG));
    }
  }

  matmul(m: GpuMatrix, x: GpuBuf, y: GpuBuf, T: number): void {
    const pipe = this.gpu.pipeline(m.dtype as ShaderModuleName, "matmul");
    const rowsPerGroup = WG / this.gpu.threadsPerRow;
    for (const p of m.parts) {
      const params = [x.at, y.at, p.rows, m.cols, T, m.rows, p.row0, 0, 0, m.bf16Scales ? 1 : 0];
      this.#push(pipe, p, params, Math.ceil(p.rows / rowsPerGroup));
    }
  }

  matmuls(products: Product<GpuBuf, GpuMatrix>[], T: number): void {
    for (const [m, x, y] of products) this.matmul(m, x, y, T);
  }

  norm(
    x: GpuBuf,
    w: GpuBuf,
    b: GpuBuf,
    out: GpuBuf,
    n: number,
    groups: number,
    wrap: number,
    eps: number,
  ): void {
    const params = [x.at, w.at, b.at, out.at, n, groups, wrap, f32Bits(eps)];
    this.#op("norm", groups, params, WG / this.gpu.threadsPerRow);
  }

  act(kind: Activation, x: GpuBuf, out: GpuBuf, n: number): void {
    const k = kind === "tanh" ? 0 : kind === "sigmoid" ? 1 : 2;
    this.#op("act", n, [x.at, out.at, n, k]);
  }

  shift(
    cur: GpuBuf,
    segs: readonly Segment<GpuBuf>[],
    slot: number,
    mix: GpuBuf,
    out: GpuBuf,
    C: number,
    form: ShiftForm,
  ): void {
    const f = form === "toPrev" ? 0 : form === "toCur" ? 1 : 2;
    const T = rowsOf(segs);
    this.#op("shift", T * C, [cur.at, this.#slot(segs, slot), mix.at, out.at, T, C, f]);
  }

  keepLast(src: GpuBuf, segs: readonly Segment<GpuBuf>[], slot: number, C: number): void {
    this.#op("keepLast", segs.length * C, [src.at, this.#slot(segs, slot), segs.length, C]);
  }

  lastRows(src: GpuBuf, segs: readonly Segment<GpuBuf>[], out: GpuBuf, C: number): void {
    this.#slot(segs, 0);
    this.#op("lastRows", segs.length * C, [src.at, out.at, segs.length, C]);
  }

  columns(
    src: GpuBuf,
    stride: number,
    offset: number,
    width: number,
    out: GpuBuf,
    T: number,
  ): void {
    this.#op("columns", T * width, [src.at, stride, offset, width, out.at, T]);
  }

  tmix(
    op: "lerp" | "decay",
    x: GpuBuf,
    dx: GpuBuf,
    base: GpuBuf,
    off: GpuBuf,
    out: GpuBuf,
    T: number,
    C: number,
  ): void {
    this.#op("tmix", T * C, [x.at, dx.at, base.at, off.at, out.at, T, C, op === "lerp" ? 0 : 1]);
  }

  add(x: GpuBuf, y: GpuBuf, n: number): void {
    this.#op("add", n, [x.at, y.at, n]);
  }

  sigmoidMulAdd(r: GpuBuf, v: GpuBuf, x: GpuBuf, n: number): void {
    this.#op("sigmoidMulAdd", n, [r.at, v.at, x.at, n]);
  }

  siluMul(g: GpuBuf, y: GpuBuf, n: number): void {
    this.#op("siluMul", n, [g.at, y.at, n]);
  }

  wkv4(a: Wkv4Args<GpuBuf>, segs: readonly Segment<GpuBuf>[]): void {
    const s = (slot: number) => this.#slot(segs, slot);
    this.#op("wkv4", segs.length * a.A, [
      a.r.at,
      a.k.at,
      a.v.at,
      a.first.at,
      a.decay.at,
      s(a.aa),
      s(a.bb),
      s(a.pp),
      a.out.at,
      segs.length,
      a.A,
    ]);
  }

  wkv5(
    slot: number,
    r: GpuBuf,
    k: GpuBuf,
    v: GpuBuf,
    w: GpuBuf,
    u: GpuBuf,
    y: GpuBuf,
    H: number,
    N: number,
    segs: readonly Segment<GpuBuf>[],
    decayPerToken: boolean,
  ): void {
    const S = this.#slot(segs, slot);
    this.#op("wkv5", segs.length * H * N, [
      S,
      r.at,
      k.at,
      v.at,
      w.at,
      u.at,
      y.at,
      H,
      N,
      segs.length,
      decayPerToken ? 1 : 0,
    ]);
  }

  v7TimeMix(a: V7TimeMixArgs<GpuBuf>, segs: readonly Segment<GpuBuf>[]): void {
    const { H, N } = a, T = rowsOf(segs);
    this.#op("v7gates", T * H, [
      ...[a.a0, a.al, a.w0, a.wl].map((b) => b.at),
      a.v0 ? a.v0.at : 0,
      a.v0 ? 1 : 0,
      ...[a.vl, a.v, a.vFirst, a.kkW, a.ka, a.k, a.wDecay, a.vMix, a.kkN, a.kkA, a.kMod]
        .map((b) => b.at),
      T,
      H,
      N,
    ]);
    const wkv = [a.r, a.wDecay, a.kMod, a.vMix, a.kkN, a.kkA, a.y].map((b) => b.at);
    this.#op("wkv7", segs.length * H * N, [this.#slot(segs, a.S), ...wkv, H, N, segs.length]);
    const out = [a.y, a.out, a.lnw, a.lnb, a.r, a.kMod, a.rk, a.vMix, a.g].map((b) => b.at);
    this.#op("v7out", T * H, [...out, T, H, N, f32Bits(64e-5)]);
  }

  /**
   * Encodes everything recorded since the last call into one compute pass, submits it once
   * (after the queued writes) and reads back `outputs` (the first `length` values of each, or
   * `[buffer, count]` for fewer). Callers run one submit at a time.
   */
  async submit(outputs: (GpuBuf | [GpuBuf, number])[]): Promise<Float32Array[]> {
    const { device } = this.gpu;
    const cmds = this.#cmds, writes = this.#writes;
    this.#cmds = [];
    this.#writes = [];
    this.#segs = undefined;
    this.#embedded = undefined;
    this.#ensureParams(cmds.length);
    const params = new Uint32Array(cmds.length * (SLOT / 4));
    cmds.forEach((c, i) => params.set(c.params, i * (SLOT / 4)));
    if (params.length) device.queue.writeBuffer(this.#params!, 0, params);
    for (const [o, v] of writes) device.queue.writeBuffer(this.#work!, o * 4, v);
    device.pushErrorScope("validation");
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    cmds.forEach((c, i) => {
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.part ? c.part.bind! : this.#opsBind!, [i * SLOT]);
      const x = Math.min(c.groups, 65535);
      pass.dispatchWorkgroups(x, Math.ceil(c.groups / x));
    });
    pass.end();
    const ranges = outputs.map((o) => Array.isArray(o) ? o : [o, o.length] as const);
    const total = ranges.reduce((s, [, n]) => s + n, 0);
    if (total > 0) {
      if (!this.#readback || this.#readback.size < total * 4) {
        this.#readback?.destroy();
        this.#readback = device.createBuffer({
          size: total * 4,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        });
      }
      let at = 0;
      for (const [b, n] of ranges) {
        enc.copyBufferToBuffer(this.#work!, b.at * 4, this.#readback, at * 4, n * 4);
        at += n;
      }
    }
    device.queue.submit([enc.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new Error(`WebGPU rejected the pass: ${error.message}`);
    if (total === 0) {
      await device.queue.onSubmittedWorkDone();
      return [];
    }
    await this.#readback!.mapAsync(GPUMapMode.READ, 0, total * 4);
    const all = new Float32Array(this.#readback!.getMappedRange(0, total * 4).slice(0));
    this.#readback!.unmap();
    let at = 0;
    return ranges.map(([, n]) => all.subarray(at, at += n));
  }

  /** Frees every buffer and the device. */
  destroy(): void {
    for (const b of this.#owned) b.destroy();
    this.#params?.destroy();
    this.#readback?.destroy();
    this.#owned = [];
    this.gpu.destroy();
  }
}

/** Tokens in a pass's segments. */
function rowsOf(segs: readonly Segment<GpuBuf>[]): number {
  const last = segs[segs.length - 1];
  return last.start + last.length;
}
