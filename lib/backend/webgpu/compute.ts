/**
 * The model's operations (`Compute` of `lib/model/ops.ts`) recorded as WebGPU dispatches.
 *
 * Memory: one storage buffer `buf` holds the weight vectors, every activation buffer and the
 * state being run (a slot the state is written into before a pass and read back from after it);
 * matrices live in their own buffers, split by rows into parts no larger than the device's
 * largest storage binding. A `Compute` buffer handed to the model code is a `GpuVec`: a
 * Float32Array whose only meaning is its place in `buf` (its own values are never used), and
 * whose `set` records a copy on the device. Each call of the model code records its dispatches;
 * {@link GpuCompute.submit} then encodes them into one compute pass, submits once and reads back
 * only what is asked for.
 * @module
 */

import type {
  Activation,
  Compute,
  Product,
  ShiftForm,
  V7TimeMixArgs,
  Wkv4Args,
} from "../../model/ops.ts";
import { groupedByte, groupedScale, type Matrix, type StorageDType } from "../../model/tensor.ts";
import { floatToHalf } from "../../formats/dtype.ts";
import type { Gpu, ShaderModuleName } from "./device.ts";

const SLOT = 256; // bytes of parameters per dispatch (the uniform dynamic-offset alignment)
const ALIGN = 64; // elements: buffers in `buf` start on 256-byte boundaries
const WG = 64; // invocations per workgroup of every kernel

/** Owners of the ArrayBuffers behind GpuVecs: where in `buf` they start. */
const places = new WeakMap<ArrayBufferLike, { compute: GpuCompute; base: number }>();

/** A Compute buffer on the device: a Float32Array standing for a range of `buf`. */
class GpuVec extends Float32Array {
  /** Records `this[offset + i] = src[i]` on the device. */
  override set(src: ArrayLike<number>, offset = 0): void {
    const p = places.get(this.buffer);
    if (!p) throw new Error("GpuVec without a device buffer");
    const from = src as Float32Array;
    p.compute.copy(from, this, offset, from.length);
  }
}

/** One part of a matrix (rows [row0, row0 + rows)) and its bind group. */
interface MatrixPart {
  row0: number;
  rows: number;
  bind: GPUBindGroup;
  buffers: GPUBuffer[];
}

/** A matrix on the device. */
interface GpuMatrix {
  dtype: StorageDType;
  rows: number;
  cols: number;
  parts: MatrixPart[];
  bytes: number;
}

interface Command {
  pipeline: GPUComputePipeline;
  /** The matrix part it reads (its bind group), or none: the ops bind group. */
  part: MatrixPart | undefined;
  params: Uint32Array;
  groups: number;
}

/**
 * A matrix in the quantized file's layout: row-major values (q8 int8, q4 ggml Q4_0 nibbles,
 * f16/bf16 16-bit words, f32) and, for q8/q4, one f16 scale per block of 32 values of a row.
 */
export interface RowMajorMatrix {
  /** Storage type. */
  readonly dtype: StorageDType;
  /** Output and input sizes. */
  readonly rows: number;
  readonly cols: number;
  /** The values, rows one after another. */
  readonly data: Uint8Array;
  /** q8/q4: f16 bits of the block scales, [rows, cols/32]. */
  readonly scales?: Uint16Array;
}

/**
 * A matrix of the CPU engine's layout in the file layout (q8/q4 rows un-interleaved, scales as
 * f16, which they are exactly: quantization rounds them so).
 * @example
 * ```ts ignore
 * const m = toRowMajor(weights.mat("blocks.0.att.key.weight"));
 * ```
 */
export function toRowMajor(m: Matrix): RowMajorMatrix {
  const { rows, cols, dtype } = m;
  const bytes = (a: ArrayBufferView, n: number) => new Uint8Array(a.buffer, a.byteOffset, n);
  if (dtype === "f32") return { dtype, rows, cols, data: bytes(m.data, rows * cols * 4) };
  if (dtype === "f16" || dtype === "bf16") {
    return { dtype, rows, cols, data: bytes(m.data, rows * cols * 2) };
  }
  const rowBytes = dtype === "q8" ? cols : cols / 2, nb = cols / 32;
  const src = bytes(m.data, m.data.byteLength);
  const data = new Uint8Array(rows * rowBytes);
  const scales = new Uint16Array(rows * nb);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < rowBytes; p++) data[r * rowBytes + p] = src[groupedByte(r, p, rowBytes)];
    for (let b = 0; b < nb; b++) scales[r * nb + b] = floatToHalf(m.scales[groupedScale(r, b, nb)]);
  }
  return { dtype, rows, cols, data, scales };
}

/** `v` over a plain ArrayBuffer (WebGPU takes no shared memory): itself, or a copy. */
function plain(v: Float32Array): Float32Array<ArrayBuffer> {
  return v.buffer instanceof ArrayBuffer ? v as Float32Array<ArrayBuffer> : v.slice();
}

function rowBytesOf(dtype: StorageDType, cols: number): number {
  return dtype === "f32" ? cols * 4 : dtype === "q8" ? cols : dtype === "q4" ? cols / 2 : cols * 2;
}

/**
 * `Compute` on a WebGPU device. Set-up: {@link GpuCompute.addVector} and
 * {@link GpuCompute.addMatrix} for the weights, `buffer` for activations, then
 * {@link GpuCompute.seal}; afterwards each model call records and {@link GpuCompute.submit}s.
 * @example
 * ```ts ignore
 * const c = new GpuCompute(await openGpu());
 * const x = c.buffer(64, false), y = c.buffer(64, false);
 * c.seal();
 * c.write(x, new Float32Array(64).fill(1));
 * c.act("tanh", x, y, 64);
 * const [out] = await c.submit([y]);
 * ```
 */
export class GpuCompute implements Compute {
  readonly gpu: Gpu;
  /** Largest bytes of one matrix part (the device's binding limit unless set lower in tests). */
  readonly maxPartBytes: number;
  #top = 0;
  #work: GPUBuffer | undefined;
  #opsBind: GPUBindGroup | undefined;
  #params: GPUBuffer | undefined;
  #readback: GPUBuffer | undefined;
  #cmds: Command[] = [];
  #writes: [number, Float32Array][] = [];
  #vectors = new Map<ArrayBufferLike, Map<number, number>>(); // weight vecs: buffer → offset → place
  #matrices = new Map<Matrix | RowMajorMatrix, GpuMatrix>();
  #pending: [number, Float32Array][] = []; // vector uploads until seal
  #owned: GPUBuffer[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  /** Bytes of matrices uploaded. */
  matrixBytes = 0;

  constructor(gpu: Gpu, options: { maxPartBytes?: number } = {}) {
    this.gpu = gpu;
    this.maxPartBytes = Math.min(options.maxPartBytes ?? Infinity, gpu.maxBinding);
  }

  #alloc(n: number): number {
    const o = this.#top;
    this.#top = o + Math.ceil(Math.max(n, 1) / ALIGN) * ALIGN;
    return o;
  }

  /** Registers a weight vector (read by later ops through the same Float32Array view). */
  addVector(v: Float32Array): void {
    let byOffset = this.#vectors.get(v.buffer);
    if (!byOffset) this.#vectors.set(v.buffer, byOffset = new Map());
    if (byOffset.has(v.byteOffset)) return;
    const o = this.#alloc(v.length);
    byOffset.set(v.byteOffset, o);
    this.#pending.push([o, v]);
  }

  /** Uploads a matrix (split by rows where it exceeds one binding); `key` names it to ops. */
  addMatrix(key: Matrix | RowMajorMatrix, m: RowMajorMatrix = key as RowMajorMatrix): void {
    const { device } = this.gpu;
    const { dtype, rows, cols } = m;
    if (cols % 32 !== 0 && (dtype === "q8" || dtype === "q4")) {
      throw new Error(`q8/q4 matrices need whole blocks of 32 columns, not ${cols}`);
    }
    if (cols % 8 !== 0) throw new Error(`the WebGPU kernels need cols % 8 == 0, not ${cols}`);
    const rowBytes = rowBytesOf(dtype, cols), nb = cols / 32;
    const quant = dtype === "q8" || dtype === "q4";
    const scaleRowBytes = quant ? nb * 2 : 0;
    const perPart = Math.max(1, Math.floor(this.maxPartBytes / Math.max(rowBytes, scaleRowBytes)));
    const parts: MatrixPart[] = [];
    let bytes = 0;
    for (let row0 = 0; row0 < rows; row0 += perPart) {
      const n = Math.min(perPart, rows - row0);
      const data = this.#upload(m.data.subarray(row0 * rowBytes, (row0 + n) * rowBytes));
      const buffers = [data];
      bytes += data.size;
      if (quant) {
        const s = m.scales!.subarray(row0 * nb, (row0 + n) * nb);
        const scales = this.#upload(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
        buffers.push(scales);
        bytes += scales.size;
      }
      parts.push({ row0, rows: n, buffers, bind: undefined as unknown as GPUBindGroup });
    }
    this.#matrices.set(key, { dtype, rows, cols, parts, bytes });
    this.matrixBytes += bytes;
    void device;
  }

  #upload(bytes: Uint8Array): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    const b = this.gpu.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    new Uint8Array(b.getMappedRange()).set(bytes);
    b.unmap();
    this.#owned.push(b);
    return b;
  }

  /** A zeroed activation buffer of `n` values on the device. */
  buffer(n: number, _shared = false): Float32Array {
    const base = this.#alloc(n);
    const v = new GpuVec(n);
    places.set(v.buffer, { compute: this, base });
    return v;
  }

  /** Creates `buf` and the bind groups once every weight and buffer is known. */
  seal(): void {
    const { device } = this.gpu;
    const size = Math.max(this.#top, ALIGN) * 4;
    if (size > this.gpu.maxBinding) {
      throw new Error(
        `the activations and weight vectors need ${size} bytes, over the device's ` +
          `${this.gpu.maxBinding}-byte storage binding: use a smaller chunk`,
      );
    }
    this.#work = device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    this.#owned.push(this.#work);
    for (const [o, v] of this.#pending) device.queue.writeBuffer(this.#work, o * 4, plain(v));
    this.#pending = [];
    this.#ensureParams(64);
    for (const m of this.#matrices.values()) this.#bindMatrix(m);
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
    const need = dispatches * SLOT;
    if (this.#params && this.#params.size >= need) return;
    this.#params?.destroy();
    this.#params = this.gpu.device.createBuffer({
      size: Math.max(need, 64 * SLOT) * 2,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#opsBind = this.gpu.device.createBindGroup({
      layout: this.gpu.opsLayout,
      entries: [
        { binding: 0, resource: { buffer: this.#params, size: SLOT } },
        { binding: 1, resource: { buffer: this.#work! } },
      ],
    });
    for (const m of this.#matrices.values()) if (m.parts[0].bind) this.#bindMatrix(m);
  }

  /** Where a Float32Array the model code passes lives in `buf` (element offset). */
  place(a: Float32Array): number {
    const p = places.get(a.buffer);
    if (p) return p.base + a.byteOffset / 4;
    const o = this.#vectors.get(a.buffer)?.get(a.byteOffset);
    if (o === undefined) throw new Error("a vector the WebGPU backend was not given");
    return o;
  }

  #matrix(m: Matrix): GpuMatrix {
    const g = this.#matrices.get(m);
    if (!g) throw new Error(`a ${m.rows}×${m.cols} matrix the WebGPU backend was not given`);
    return g;
  }

  #op(entry: string, threads: number, params: number[], perGroup = WG): void {
    this.#push(this.gpu.pipeline("ops", entry), undefined, params, Math.ceil(threads / perGroup));
  }

  #push(pipe: GPUComputePipeline, part: MatrixPart | undefined, params: number[], groups: number) {
    if (groups <= 0) return;
    this.#cmds.push({ pipeline: pipe, part, params: Uint32Array.from(params), groups });
  }

  /** Records `dst[offset + i] = src[i]` for `n` values. */
  copy(src: Float32Array, dst: Float32Array, offset: number, n: number): void {
    this.#op("copy", n, [this.place(src), this.place(dst) + offset, n]);
  }

  /** Queues `values` to be written into `dst` before the next submitted pass. */
  write(dst: Float32Array, values: Float32Array): void {
    this.#writes.push([this.place(dst), values]);
  }

  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    const g = this.#matrix(m);
    const pipe = this.gpu.pipeline(g.dtype as ShaderModuleName, "matmul");
    for (const p of g.parts) {
      this.#push(pipe, p, [
        this.place(x),
        this.place(y),
        p.rows,
        g.cols,
        T,
        g.rows,
        p.row0,
      ], Math.ceil(p.rows / (WG / this.gpu.threadsPerRow)));
    }
  }

  matmuls(products: Product[], T: number): void {
    for (const [m, x, y] of products) this.matmul(m, x, y, T);
  }

  row(m: Matrix, row: number, out: Float32Array): void {
    const g = this.#matrix(m);
    const p = g.parts.find((p) => row >= p.row0 && row < p.row0 + p.rows)!;
    const pipe = this.gpu.pipeline(g.dtype as ShaderModuleName, "row");
    this.#push(
      pipe,
      p,
      [row - p.row0, 0, 0, g.cols, 0, 0, 0, 0, this.place(out)],
      Math.ceil(g.cols / 8 / WG),
    );
  }

  norm(
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    out: Float32Array,
    n: number,
    groups: number,
    wrap: number,
    eps: number,
  ): void {
    const e = new Uint32Array(new Float32Array([eps]).buffer)[0];
    const params = [
      this.place(x),
      this.place(w),
      this.place(b),
      this.place(out),
      n,
      groups,
      wrap,
      e,
    ];
    this.#op("norm", groups, params, WG / this.gpu.threadsPerRow);
  }

  act(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
    const k = kind === "tanh" ? 0 : kind === "sigmoid" ? 1 : 2;
    this.#op("act", n, [this.place(x), this.place(out), n, k]);
  }

  shift(
    cur: Float32Array,
    prev: Float32Array,
    mix: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
    form: ShiftForm,
  ): void {
    const f = form === "toPrev" ? 0 : form === "toCur" ? 1 : 2;
    const params = [this.place(cur), this.place(prev), this.place(mix), this.place(out), T, C, f];
    this.#op("shift", T * C, params);
  }

  tmix(
    op: "lerp" | "decay",
    x: Float32Array,
    dx: Float32Array,
    base: Float32Array,
    off: Float32Array,
    out: Float32Array,
    T: number,
    C: number,
  ): void {
    const places = [x, dx, base, off, out].map((a) => this.place(a));
    this.#op("tmix", T * C, [...places, T, C, op === "lerp" ? 0 : 1]);
  }

  add(x: Float32Array, y: Float32Array, n: number): void {
    this.#op("add", n, [this.place(x), this.place(y), n]);
  }

  sigmoidMulAdd(r: Float32Array, v: Float32Array, x: Float32Array, n: number): void {
    this.#op("sigmoidMulAdd", n, [this.place(r), this.place(v), this.place(x), n]);
  }

  siluMul(g: Float32Array, y: Float32Array, n: number): void {
    this.#op("siluMul", n, [this.place(g), this.place(y), n]);
  }

  wkv4(a: Wkv4Args): void {
    const arrays = [a.r, a.k, a.v, a.first, a.decay, a.aa, a.bb, a.pp, a.out];
    this.#op("wkv4", a.A, [...arrays.map((v) => this.place(v)), a.T, a.A]);
  }

  wkv5(
    S: Float32Array,
    r: Float32Array,
    k: Float32Array,
    v: Float32Array,
    w: Float32Array,
    u: Float32Array,
    y: Float32Array,
    H: number,
    N: number,
    T: number,
    decayPerToken: boolean,
  ): void {
    const places = [S, r, k, v, w, u, y].map((a) => this.place(a));
    this.#op("wkv5", H * N, [...places, H, N, T, decayPerToken ? 1 : 0]);
  }

  v7TimeMix(a: V7TimeMixArgs): void {
    const { T, H, N } = a, at = (v: Float32Array) => this.place(v);
    this.#op("v7gates", T * H, [
      at(a.a0),
      at(a.al),
      at(a.w0),
      at(a.wl),
      a.v0 ? at(a.v0) : 0,
      a.v0 ? 1 : 0,
      at(a.vl),
      at(a.v),
      at(a.vFirst),
      at(a.kkW),
      at(a.ka),
      at(a.k),
      at(a.wDecay),
      at(a.vMix),
      at(a.kkN),
      at(a.kkA),
      at(a.kMod),
      T,
      H,
      N,
    ]);
    const wkv = [a.S, a.r, a.wDecay, a.kMod, a.vMix, a.kkN, a.kkA, a.y].map(at);
    this.#op("wkv7", H * N, [...wkv, H, N, T]);
    const out = [a.y, a.out, a.lnw, a.lnb, a.r, a.kMod, a.rk, a.vMix, a.g].map(at);
    const eps = new Uint32Array(new Float32Array([64e-5]).buffer)[0];
    this.#op("v7out", T * H, [...out, T, H, N, eps]);
  }

  /** Dispatches recorded since the last submit. */
  get recorded(): number {
    return this.#cmds.length;
  }

  /**
   * Encodes everything recorded since the last call into one compute pass, submits it once
   * (after the queued {@link GpuCompute.write}s) and reads back `outputs` (views the ops wrote).
   * Calls run one after another.
   */
  submit(outputs: Float32Array[]): Promise<Float32Array[]> {
    const cmds = this.#cmds, writes = this.#writes;
    this.#cmds = [];
    this.#writes = [];
    const run = this.#queue.then(() => this.#submit(cmds, writes, outputs));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #submit(
    cmds: Command[],
    writes: [number, Float32Array][],
    outputs: Float32Array[],
  ): Promise<Float32Array[]> {
    const { device } = this.gpu;
    this.#ensureParams(cmds.length);
    const params = new Uint32Array(cmds.length * (SLOT / 4));
    cmds.forEach((c, i) => params.set(c.params, i * (SLOT / 4)));
    if (params.length) device.queue.writeBuffer(this.#params!, 0, params);
    for (const [o, v] of writes) device.queue.writeBuffer(this.#work!, o * 4, plain(v));
    device.pushErrorScope("validation");
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    cmds.forEach((c, i) => {
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.part ? c.part.bind : this.#opsBind!, [i * SLOT]);
      const x = Math.min(c.groups, 65535);
      pass.dispatchWorkgroups(x, Math.ceil(c.groups / x));
    });
    pass.end();
    const total = outputs.reduce((s, o) => s + o.length, 0);
    if (total > 0) {
      if (!this.#readback || this.#readback.size < total * 4) {
        this.#readback?.destroy();
        this.#readback = device.createBuffer({
          size: total * 4,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        });
      }
      let at = 0;
      for (const o of outputs) {
        enc.copyBufferToBuffer(
          this.#work!,
          this.place(o) * 4,
          this.#readback,
          at * 4,
          o.length * 4,
        );
        at += o.length;
      }
    }
    device.queue.submit([enc.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new Error(`WebGPU rejected the forward pass: ${error.message}`);
    if (total === 0) {
      await device.queue.onSubmittedWorkDone();
      return [];
    }
    await this.#readback!.mapAsync(GPUMapMode.READ, 0, total * 4);
    const all = new Float32Array(this.#readback!.getMappedRange(0, total * 4).slice(0));
    this.#readback!.unmap();
    let at = 0;
    return outputs.map((o) => all.slice(at, at += o.length));
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
