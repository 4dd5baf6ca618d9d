/**
 * The {@link Ops} one Worker of the team runs: its share of every matrix product and recurrence
 * in the WebAssembly kernels, then the team meets at a barrier; the cheap per-token steps are
 * computed alike by every member into its own buffers. Buffers come from the shared memory:
 * those the plan (`plan.ts`) marks shared at the same offset in every Worker (the forward pass
 * asks for them in the same order everywhere), the others from this Worker's region.
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
import {
  columnsTS,
  keepLastTS,
  lastRowsTS,
  normTS,
  shiftTS,
  tmixTS,
  v7TimeMixTS,
  wkv4TS,
  wkv5TS,
} from "../reference/math.ts";
import type { Matrix } from "../../model/tensor.ts";
import { type Kernels, quantizedBytes } from "./kernels.ts";
import { decodeRowGrouped } from "./layout.ts";

type Seg = Segment<Float32Array>;

/** Slots of the control block (Int32 indices into shared memory). */
export const CTRL = {
  /** Job counter: the main thread bumps it to start a forward pass. */
  job: 0,
  /** Number of the last finished job (member 0 writes it). */
  done: 1,
  /** Tokens in this job. */
  tokens: 2,
  /** Segments (sequences) in this job. */
  segments: 10,
  /** 1: logits after every token. */
  every: 3,
  /** Barrier: members arrived in this generation. */
  barCount: 4,
  /** Barrier: generation counter. */
  barGen: 5,
  logitsOffset: 6,
  logitsLength: 7,
  /** Non-zero when a member failed. */
  error: 8,
  /** Non-zero: members leave their loop. */
  quit: 9,
  /**
   * The first of {@link CLAIM_SLOTS} counters of row chunks claimed in this pass (products split
   * dynamically; see `WorkerOps`), each on a cache line of its own: members claim while others
   * spin on the barrier's words.
   */
  claim: 16,
  size: 16 + 16 * 16,
} as const;

/**
 * Bytes of a member's product scratch for products of up to `maxT` tokens and `maxCols`
 * columns: the quantized activations of q8/q4, or one reordered f32 input of bf16.
 */
export function productScratchBytes(maxT: number, maxCols: number): number {
  return Math.max(quantizedBytes(Math.ceil((maxT * maxCols) / 32) * 32), 4 * maxCols) + 64;
}

/**
 * Where a profiling team adds up milliseconds (each member a row of {@link PROFILE_STRIDE}): the
 * products by storage, the barrier waits, the recurrences, the per-token steps, the embedding,
 * and (member 0) whole passes and their count. A member whose row holds a nonzero `paused`
 * times nothing (set it in every row, between passes, to run without profiling's cost: two
 * `performance.now()` calls of about 160 ns around every step and every chunk).
 */
export const PROFILE = {
  f32: 0,
  bf16: 1,
  f16: 2,
  q8: 3,
  q4: 4,
  barrier: 5,
  recurrence: 6,
  elementwise: 7,
  embed: 8,
  pass: 9,
  passes: 10,
  paused: 11,
} as const;

const PER_TOKEN_STEPS = [
  "norm",
  "act",
  "shift",
  "keepLast",
  "lastRows",
  "columns",
  "tmix",
  "add",
  "sigmoidMulAdd",
  "siluMul",
] as const;

/** Values per member in a profile array. */
export const PROFILE_STRIDE = 16;

/** `ew` op codes of the activations. */
const ACT_OP: Record<Activation, number> = { tanh: 0, sigmoid: 1, relusq: 2 };

/** Rows of a product are split between members in multiples of this (whole cache lines of y). */
export const ROW_ALIGN = 16;

/**
 * Weight bytes of a decoding product's largest row chunk, the unit members claim (chunks shrink
 * towards a product's end: see `WorkerOps`): runs this long keep each member's read sequential
 * for hundreds of microseconds, while the shrinking tail still lets a member slowed by the
 * machine (a busy neighbour, a slower core) hand its last chunks to the others. Measured in one
 * process against 128 KiB (the former value): decode 5-10 % faster on RWKV-4 430M q4/q8 and
 * RWKV-7 0.4B q4/q8, like a fixed half-and-half split; longer runs for each member, fewer starts.
 * Prompts (T > 1) compute far longer per byte and claim chunks of a sixteenth of it.
 */
export const CHUNK_BYTES = 2 * 1024 * 1024;

/**
 * Claim counters: the products of one `matmuls` call (no barrier between them) each count on
 * their own, so one member's last failed claim on a product can never take a chunk of the next
 * (a decoding group, claimed as one run, counts on the first).
 */
export const CLAIM_SLOTS = 16;

/** The most products of one `matmuls` call decoded as one group (RWKV-7's first has seven). */
export const GROUP_MAX = 8;

/** Bytes a row of `m` reads: q8 38 and q4 20 per block of 32 with their scales (and corrections). */
function rowBytes(m: Matrix): number {
  return m.cols *
    (m.dtype === "f32" ? 4 : m.dtype === "q8" ? 38 / 32 : m.dtype === "q4" ? 20 / 32 : 2);
}

/**
 * How members claim a decoding group's rows: chunk i is the pieces [starts[i], starts[i + 1]),
 * piece q rows [r0[q], r1[q]) of product `product[q]`.
 */
export interface GroupPlan {
  /** The group's matrices, in the order given. */
  mats: readonly Matrix[];
  starts: Int32Array;
  product: Int32Array;
  r0: Int32Array;
  r1: Int32Array;
}

/**
 * The claim plan of a decoding group of matrices: their rows in the order the matrices lie in
 * memory as one run, cut as one product's (guided: each chunk a 2n-th of the bytes still
 * unclaimed, at most `chunkBytes`, down to {@link ROW_ALIGN} rows at the end; pieces in
 * multiples of {@link ROW_ALIGN} rows), a chunk continuing into the next matrix when one ends.
 * The last chunks are small, so members reach the barrier together: a floor of an eighth of
 * `chunkBytes` (256 KiB when decoding: a product's last chunk 40 µs of one member's reading)
 * left member 0 waiting 17 µs a layer at RWKV-7's first barrier. Without it, against it, in
 * one process (the two engines alternating token by token, four instances of each, 800 tokens,
 * both ways round): RWKV-7 0.4B q4 decode 1.2 % and 0.5 % faster, RWKV-4 430M q4 1.3 % faster
 * and 0.2 % faster (a single instance's placement in memory moves it ±3 %).
 * @example
 * ```ts ignore
 * const plan = groupPlan([r, k, v], 2, CHUNK_BYTES);
 * ```
 */
export function groupPlan(mats: readonly Matrix[], n: number, chunkBytes: number): GroupPlan {
  const order = mats.map((_, j) => j).sort((a, b) => mats[a].offset - mats[b].offset);
  let left = mats.reduce((a, m) => a + m.rows * rowBytes(m), 0);
  const most = Math.max(1, chunkBytes);
  const starts = [0], product: number[] = [], r0: number[] = [], r1: number[] = [];
  let o = 0, r = 0; // the next unclaimed row: product order[o], row r
  while (o < order.length) {
    let want = Math.min(most, left / (2 * n));
    while (o < order.length && want > 0) {
      const m = mats[order[o]], rb = rowBytes(m);
      const take = Math.min(m.rows - r, Math.ceil(want / rb / ROW_ALIGN) * ROW_ALIGN);
      product.push(order[o]), r0.push(r), r1.push(r + take);
      r += take, want -= take * rb, left -= take * rb;
      if (r >= m.rows) o++, r = 0;
    }
    starts.push(product.length);
  }
  const i32 = (a: number[]) => Int32Array.from(a);
  return { mats, starts: i32(starts), product: i32(product), r0: i32(r0), r1: i32(r1) };
}

/** A bump allocator over a region of the shared memory. */
export class Region {
  #top: number;
  readonly start: number;
  readonly end: number;
  constructor(readonly memory: WebAssembly.Memory, start: number, size: number) {
    this.start = this.#top = start;
    this.end = start + size;
  }
  /** Reserves `bytes` (64-byte aligned) and returns their offset. */
  bytes(n: number): number {
    const off = Math.ceil(this.#top / 64) * 64;
    if (off + n > this.end) throw new RangeError("engine region exhausted");
    this.#top = off + n;
    return off;
  }
  /** A zeroed f32 vector (`zero` false: as the memory has it, pages left untouched). */
  f32(n: number, zero = true): Float32Array {
    const v = new Float32Array(this.memory.buffer, this.bytes(n * 4), n);
    if (zero) v.fill(0);
    return v;
  }
}

/**
 * Generation-counter barrier over the control block: the last to arrive resets the count and
 * bumps the generation. The others spin first (the team is usually microseconds apart, and
 * waking from Atomics.wait costs tens of microseconds, more than a small product), then sleep.
 */
export function barrier(ctrl: Int32Array, parties: number): void {
  if (parties === 1) return;
  const gen = Atomics.load(ctrl, CTRL.barGen);
  if (Atomics.add(ctrl, CTRL.barCount, 1) === parties - 1) {
    Atomics.store(ctrl, CTRL.barCount, 0);
    Atomics.add(ctrl, CTRL.barGen, 1);
    Atomics.notify(ctrl, CTRL.barGen);
    return;
  }
  for (let spin = 0; spin < 1_000_000; spin++) {
    if (Atomics.load(ctrl, CTRL.barGen) !== gen) return;
  }
  while (Atomics.load(ctrl, CTRL.barGen) === gen) Atomics.wait(ctrl, CTRL.barGen, gen, 100);
}

/** The items [i0, i1) member `id` of `n` takes of `count` (heads: contiguous, near even). */
export function share(count: number, id: number, n: number): [number, number] {
  const per = Math.ceil(count / n), i0 = Math.min(count, id * per);
  return [i0, Math.min(count, i0 + per)];
}

/** The rows [r0, r1) member `id` of `n` computes of a product with `rows` rows. */
export function rowShare(rows: number, id: number, n: number): [number, number] {
  const per = Math.ceil(rows / n / ROW_ALIGN) * ROW_ALIGN;
  const r0 = Math.min(rows, id * per);
  return [r0, Math.min(rows, r0 + per)];
}

/** One team member's operations. */
export class WorkerOps implements Ops<Float32Array, Matrix> {
  readonly #k: Kernels;
  readonly #ctrl: Int32Array;
  readonly #id: number;
  readonly #n: number;
  readonly #shared: Region;
  readonly #private: Region;
  readonly #sharedBuffers: Set<number>;
  #made = 0;
  // each claim counter's value when this member's current product on it began
  readonly #claimBase = new Int32Array(CLAIM_SLOTS);
  // each matrix's claimed chunks (null: split in fixed shares)
  readonly #bounds = new WeakMap<Matrix, Int32Array | null>();
  readonly #promptBounds = new WeakMap<Matrix, Int32Array | null>();
  // each decoding group's claim plan, by its first matrix and its size
  readonly #groupPlans = new WeakMap<Matrix, Map<number, GroupPlan>>();
  // the prepared inputs of a decoding group's products, one scratch each
  readonly #groupXq: number[];
  readonly #chunkBytes: number;
  readonly #xq: number; // this member's quantized activations (q8/q4) or bf16/f16 decode scratch
  readonly #prof: Float64Array | undefined; // this member's PROFILE sums, when profiling

  /**
   * `sharedBuffers`: the indices (in creation order) of the buffers the team shares;
   * `scratchBytes`: this member's product scratch, from {@link productScratchBytes};
   * `profile`: where to add up milliseconds by {@link PROFILE} kind (this member's row);
   * `chunkBytes`: weight bytes of the row chunks members claim ({@link CHUNK_BYTES});
   * `decodeScratchBytes`: the scratch of one product's input for one token (each of a
   * decoding group's products gets one, {@link GROUP_MAX} in all).
   */
  constructor(
    kernels: Kernels,
    ctrl: Int32Array,
    id: number,
    n: number,
    shared: Region,
    priv: Region,
    sharedBuffers: readonly number[],
    scratchBytes: number,
    profile?: Float64Array,
    chunkBytes = CHUNK_BYTES,
    decodeScratchBytes = scratchBytes,
  ) {
    this.#chunkBytes = chunkBytes;
    this.#prof = profile?.subarray(id * PROFILE_STRIDE, (id + 1) * PROFILE_STRIDE);
    this.#k = kernels;
    this.#ctrl = ctrl;
    this.#id = id;
    this.#n = n;
    this.#shared = shared;
    this.#private = priv;
    this.#sharedBuffers = new Set(sharedBuffers);
    this.#xq = priv.bytes(scratchBytes);
    this.#groupXq = n > 1
      ? Array.from({ length: GROUP_MAX }, () => priv.bytes(decodeScratchBytes))
      : [];
    if (this.#prof) {
      // the per-token steps, timed only when profiling (no cost otherwise)
      const self = this as unknown as Record<string, (...a: unknown[]) => void>;
      for (const name of PER_TOKEN_STEPS) {
        const step = self[name].bind(this);
        self[name] = (...a) => {
          const t0 = this.#now();
          step(...a);
          this.#took(PROFILE.elementwise, t0);
        };
      }
    }
  }

  /** Now, when profiling (0 when not, or paused). */
  #now(): number {
    return this.#prof && !this.#prof[PROFILE.paused] ? performance.now() : 0;
  }

  /** Adds the time since `t0` (from `#now`) to kind `k`, when profiling. */
  #took(k: number, t0: number): void {
    if (t0) this.#prof![k] += performance.now() - t0;
  }

  /** The team meets (the wait counted when profiling). */
  #meet(): void {
    const t0 = this.#now();
    barrier(this.#ctrl, this.#n);
    this.#took(PROFILE.barrier, t0);
  }

  buffer(n: number): Float32Array {
    const shared = this.#sharedBuffers.has(this.#made++);
    return (shared ? this.#shared : this.#private).f32(n);
  }

  embed(emb: Matrix, tokens: ArrayLike<number>, out: Float32Array): void {
    const C = emb.cols, t0 = this.#now();
    for (let t = 0; t < tokens.length; t++) {
      decodeRowGrouped(emb, tokens[t], out.subarray(t * C, (t + 1) * C));
    }
    this.#took(PROFILE.embed, t0);
  }

  /**
   * The hot function: this member's rows of `y = m · x` for T tokens, then the barrier (all
   * of y is written when anyone returns).
   */
  matmul(m: Matrix, x: Float32Array, y: Float32Array, T: number): void {
    this.#share(m, x, y, T, 0);
    this.#meet();
  }

  /**
   * This member's rows of each product in turn, then one barrier; with `heads`, the rows of
   * this member's heads of the time mix that reads them next (as `v7TimeMix` splits them: all
   * of them in member 0 when it runs the time mix alone) and no barrier: each member reads only
   * what it wrote.
   */
  matmuls(
    products: Product<Float32Array, Matrix>[],
    T: number,
    heads?: { H: number; N: number },
  ): void {
    if (heads) {
      const { H, N } = heads;
      const [h0, h1] = this.#timeMixHeads(H, N);
      if (h1 <= h0) return;
      for (const [m, x, y] of products) {
        const t0 = this.#now();
        this.#prepare(m, x, T, this.#xq);
        this.#rows(m, this.#xq, x, y, T, h0 * N, h1 * N);
        this.#took(PROFILE[m.dtype], t0);
      }
      return;
    }
    if (T === 1 && this.#n > 1 && products.length > 1 && products.length <= GROUP_MAX) {
      this.#shareGroup(products);
    } else {
      products.forEach(([m, x, y], j) => {
        if (j > 0 && j % CLAIM_SLOTS === 0) this.#meet(); // the counters are about to be reused
        this.#share(m, x, y, T, j % CLAIM_SLOTS);
      });
    }
    this.#meet();
  }

  /**
   * Decoding several products at once: their rows, taken in the order the matrices lie in
   * memory, form one run that members claim in chunks as one product's (see {@link GroupPlan}),
   * a chunk crossing from one matrix into the next; so each member reads long sequential runs
   * however small the matrices (three 1024 × 1024 q4 matrices are 640 KiB each). Each input is
   * prepared first into a scratch of its own.
   */
  #shareGroup(products: Product<Float32Array, Matrix>[]): void {
    products.forEach(([m, x], j) => {
      const t = this.#now();
      this.#prepare(m, x, 1, this.#groupXq[j]);
      this.#took(PROFILE[m.dtype], t);
    });
    const plan = this.#groupPlan(products);
    const base = this.#claimBase[0], chunks = plan.starts.length - 1;
    for (;;) {
      const i = (Atomics.add(this.#ctrl, CTRL.claim, 1) - base) | 0;
      if (i >= chunks) break;
      for (let q = plan.starts[i]; q < plan.starts[i + 1]; q++) {
        const j = plan.product[q], [m, x, y] = products[j], t = this.#now();
        this.#rows(m, this.#groupXq[j], x, y, 1, plan.r0[q], plan.r1[q]);
        this.#took(PROFILE[m.dtype], t);
      }
    }
    this.#claimBase[0] = (base + chunks + this.#n) | 0;
  }

  /** The claim plan of a group of products (cached by its first matrix and its size). */
  #groupPlan(products: Product<Float32Array, Matrix>[]): GroupPlan {
    let byCount = this.#groupPlans.get(products[0][0]);
    if (!byCount) this.#groupPlans.set(products[0][0], byCount = new Map());
    let plan = byCount.get(products.length);
    if (!plan || plan.mats.some((m, j) => m !== products[j][0])) {
      plan = groupPlan(products.map(([m]) => m), this.#n, this.#chunkBytes);
      byCount.set(products.length, plan);
    }
    return plan;
  }

  /** The input of a product prepared for the kernels (q8/q4 quantized, bf16/f16 reordered). */
  #prepare(m: Matrix, x: Float32Array, T: number, xq: number): void {
    if (m.dtype === "q8" || m.dtype === "q4") {
      this.#k.quantize(x.byteOffset, xq, T * m.cols, m.dtype === "q8" ? 1 : 0);
    } else if (T === 1 && (m.dtype === "bf16" || m.dtype === "f16")) {
      this.#k.prepare_x(x.byteOffset, xq, m.cols, m.dtype === "f16" ? 2 ** 56 : 1);
    }
  }

  /**
   * This member's rows of `y = m · x`. q8/q4 inputs are quantized (bf16/f16 decode inputs
   * reordered) by every member alike into its private buffer, once per product (T × cols
   * values: cheap next to the product). The rows go in chunks (guided: see `#chunks`; at most
   * {@link CHUNK_BYTES} when decoding) that members claim in turn from a shared counter, so a member
   * the machine slows down takes fewer of them (a fixed split made the others wait for it at
   * the barrier: up to a fifth of a token). Every member runs the same products in the same
   * order and makes exactly one failed claim per product on the product's counter (`slot`: a
   * product's place in its `matmuls` call; the barrier after the call separates reuses), so
   * each knows where this product's claims start without talking to the others. A row's value
   * does not depend on which member computes it or with which neighbours (the kernels' results
   * are the same bits for any row range), so the outcome does not depend on the split either.
   */
  #share(m: Matrix, x: Float32Array, y: Float32Array, T: number, slot: number): void {
    const t0 = this.#now(), n = this.#n;
    this.#prepare(m, x, T, this.#xq);
    const bounds = n === 1 ? undefined : this.#chunks(m, T > 1);
    if (!bounds) {
      const [r0, r1] = rowShare(m.rows, this.#id, n);
      if (r1 > r0) this.#rows(m, this.#xq, x, y, T, r0, r1);
    } else {
      const base = this.#claimBase[slot], counter = CTRL.claim + 16 * slot;
      const chunks = bounds.length - 1;
      for (;;) {
        const i = (Atomics.add(this.#ctrl, counter, 1) - base) | 0;
        if (i >= chunks) break;
        this.#rows(m, this.#xq, x, y, T, bounds[i], bounds[i + 1]);
      }
      this.#claimBase[slot] = (base + chunks + n) | 0; // every member's one failed claim included
    }
    this.#took(PROFILE[m.dtype], t0);
  }

  /**
   * The row chunks of `m` members claim (their bounds), or undefined when a fixed split will
   * do (no more chunks than members). Guided, as a decoding group's ({@link groupPlan}, the
   * chunk size a sixteenth for prompts): the last chunks are small and members reach the
   * barrier together (equal chunks left a member waiting for the other's last one: half a chunk
   * per product on average). The same bounds in every member: they depend only on the matrix
   * and on whether the pass is a prompt.
   */
  #chunks(m: Matrix, prompt: boolean): Int32Array | undefined {
    const cache = prompt ? this.#promptBounds : this.#bounds;
    let b = cache.get(m);
    if (b === undefined) {
      // one matrix is a group of one: each chunk one piece, its rows [r1 of the last, r1)
      const plan = groupPlan([m], this.#n, prompt ? this.#chunkBytes / 16 : this.#chunkBytes);
      b = plan.r1.length <= this.#n ? null : Int32Array.from([0, ...plan.r1]);
      cache.set(m, b);
    }
    return b ?? undefined;
  }

  /** Rows [r0, r1) of `y = m · x` (from the input prepared at `xq` for q8/q4, bf16/f16). */
  #rows(
    m: Matrix,
    xq: number,
    x: Float32Array,
    y: Float32Array,
    T: number,
    r0: number,
    r1: number,
  ): void {
    const k = this.#k;
    switch (m.dtype) {
      case "f32":
        k.matmul_f32(m.offset, 0, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
        break;
      // bf16/f16: the one-token path reads x from the scratch `prepare_x` filled
      case "bf16":
        k.matmul_bf16(m.offset, xq, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
        break;
      case "f16":
        k.matmul_f16(m.offset, xq, x.byteOffset, y.byteOffset, m.rows, m.cols, T, r0, r1);
        break;
      case "q8":
        k.matmul_q8(m.offset, m.scaleOffset, xq, y.byteOffset, m.rows, m.cols, T, r0, r1);
        break;
      case "q4":
        k.matmul_q4(m.offset, m.scaleOffset, xq, y.byteOffset, m.rows, m.cols, T, r0, r1);
        break;
    }
  }

  /** A new forward pass: the claim counters start again from 0 (the pool resets them). */
  startPass(): void {
    this.#claimBase.fill(0);
  }

  // The element-wise steps: every vector lives in the shared memory, so the kernels take
  // byte offsets; shapes the kernels do not cover (N or A not a multiple of 4) use the TS.
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
    if (n % 4) return normTS(x, w, b, out, n, groups, wrap, eps);
    this.#k.norm(x.byteOffset, w.byteOffset, b.byteOffset, out.byteOffset, n, groups, wrap, eps);
  }

  shift(
    cur: Float32Array,
    segs: readonly Seg[],
    slot: number,
    mix: Float32Array,
    out: Float32Array,
    C: number,
    form: ShiftForm,
  ): void {
    const k = this.#k, f = form === "toCur" ? 1 : form === "diff" ? 2 : 0;
    for (const s of segs) {
      const prev = s.state[slot], a = s.start * C, b = (s.start + s.length) * C;
      if (C % 4) shiftTS(cur.subarray(a, b), prev, mix, out.subarray(a, b), s.length, C, form);
      else {
        k.shift(
          cur.byteOffset + a * 4,
          prev.byteOffset,
          mix.byteOffset,
          out.byteOffset + a * 4,
          C,
          s.length,
          f,
        );
      }
    }
  }

  keepLast(src: Float32Array, segs: readonly Seg[], slot: number, C: number): void {
    keepLastTS(src, segs, slot, C);
  }

  lastRows(src: Float32Array, segs: readonly Seg[], out: Float32Array, C: number): void {
    lastRowsTS(src, segs, out, C);
  }

  columns(
    src: Float32Array,
    stride: number,
    offset: number,
    width: number,
    out: Float32Array,
    T: number,
  ): void {
    columnsTS(src, stride, offset, width, out, T);
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
    if (C % 4) return tmixTS(op, x, dx, base, off, out, T, C);
    const o = (a: Float32Array) => a.byteOffset;
    this.#k.tmix(o(x), o(dx), o(base), o(off), o(out), C, T, op === "decay" ? 1 : 0);
  }

  add(x: Float32Array, y: Float32Array, n: number): void {
    this.#k.ew(y.byteOffset, y.byteOffset, x.byteOffset, n, 5);
  }

  act(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
    this.#k.ew(x.byteOffset, x.byteOffset, out.byteOffset, n, ACT_OP[kind]);
  }

  sigmoidMulAdd(r: Float32Array, v: Float32Array, x: Float32Array, n: number): void {
    this.#k.ew(r.byteOffset, v.byteOffset, x.byteOffset, n, 3);
  }

  siluMul(g: Float32Array, y: Float32Array, n: number): void {
    this.#k.ew(g.byteOffset, g.byteOffset, y.byteOffset, n, 4);
  }

  /**
   * RWKV-4's recurrence: each member its run of channels (whole groups of four) of the shared
   * state, then one barrier (it was computed alike by every member on its own state copy: the
   * same arithmetic in each, a few percent of a token on two Workers).
   */
  wkv4(a: Wkv4Args<Float32Array>, segs: readonly Seg[]): void {
    const A = a.A, t0 = this.#now();
    if (A % 4) {
      // a width no kernel covers: member 0 runs the TS alone (the state and out are shared)
      if (this.#id === 0) {
        for (const s of segs) {
          const at = (x: Float32Array) => x.subarray(s.start * A, (s.start + s.length) * A);
          wkv4TS({
            T: s.length,
            A,
            r: at(a.r),
            k: at(a.k),
            v: at(a.v),
            first: a.first,
            decay: a.decay,
            aa: s.state[a.aa],
            bb: s.state[a.bb],
            pp: s.state[a.pp],
            out: at(a.out),
          });
        }
      }
    } else {
      // runs of whole 16-channel groups (64 bytes: no two members write one cache line)
      const [g0, g1] = share(Math.ceil(A / 16), this.#id, this.#n);
      const c0 = Math.min(A, g0 * 16), n = Math.min(A, g1 * 16) - c0;
      for (const s of segs) {
        if (n <= 0) break;
        const o = (s.start * A + c0) * 4, c = c0 * 4;
        const [aa, bb, pp] = [s.state[a.aa], s.state[a.bb], s.state[a.pp]];
        this.#k.wkv4(
          a.r.byteOffset + o,
          a.k.byteOffset + o,
          a.v.byteOffset + o,
          a.first.byteOffset + c,
          a.decay.byteOffset + c,
          aa.byteOffset + c,
          bb.byteOffset + c,
          pp.byteOffset + c,
          a.out.byteOffset + o,
          n,
          s.length,
          A,
        );
      }
    }
    this.#took(PROFILE.recurrence, t0);
    this.#meet();
  }

  /**
   * The heads [h0, h1) of RWKV-7's time mix this member runs: all of them in member 0 when the
   * head size has no kernel (N not a multiple of 4: the TypeScript path), else its share.
   */
  #timeMixHeads(H: number, N: number): [number, number] {
    return N % 4 ? (this.#id === 0 ? [0, H] : [0, 0]) : share(H, this.#id, this.#n);
  }

  /** This member's heads of the time mix, each segment in turn; then one barrier. */
  v7TimeMix(a: V7TimeMixArgs<Float32Array>, segs: readonly Seg[]): void {
    const { H, N } = a, C = H * N, t0 = this.#now();
    if (N % 4) {
      // a head size no kernel covers: member 0 runs the TS alone (out is shared)
      if (this.#id === 0) {
        for (const s of segs) v7TimeMixTS(segmentArgs(a, s));
      }
      this.#took(PROFILE.recurrence, t0);
      this.#meet();
      return;
    }
    const [h0, h1] = this.#timeMixHeads(H, N), n = h1 - h0, k = this.#k;
    for (const s of segs) {
      if (n <= 0) break;
      const T = s.length, S = s.state[a.S];
      // every vector advanced to this member's first head (and per-token ones to the
      // segment's first token); the state by whole heads
      const o = (x: Float32Array) => x.byteOffset + h0 * N * 4;
      const t = (x: Float32Array) => x.byteOffset + (s.start * C + h0 * N) * 4;
      k.v7_gates(
        o(a.a0),
        t(a.al),
        o(a.w0),
        t(a.wl),
        a.v0 ? o(a.v0) : 0,
        t(a.vl),
        t(a.v),
        t(a.vFirst),
        o(a.kkW),
        o(a.ka),
        t(a.k),
        t(a.wDecay),
        t(a.vMix),
        t(a.kkN),
        t(a.kkA),
        t(a.kMod),
        n,
        N,
        T,
        C,
      );
      k.wkv7(
        S.byteOffset + h0 * N * N * 4,
        t(a.r),
        t(a.wDecay),
        t(a.kMod),
        t(a.vMix),
        t(a.kkN),
        t(a.kkA),
        t(a.y),
        n,
        N,
        T,
        C,
      );
      k.v7_out(
        t(a.y),
        t(a.out),
        o(a.lnw),
        o(a.lnb),
        t(a.r),
        t(a.kMod),
        o(a.rk),
        t(a.vMix),
        t(a.g),
        n,
        N,
        T,
        C,
        64e-5,
      );
    }
    this.#took(PROFILE.recurrence, t0);
    this.#meet();
  }

  /** As wkv7, for RWKV-5/6. */
  wkv5(
    slot: number,
    r: Float32Array,
    k: Float32Array,
    v: Float32Array,
    w: Float32Array,
    u: Float32Array,
    y: Float32Array,
    H: number,
    N: number,
    segs: readonly Seg[],
    decayPerToken: boolean,
  ): void {
    const A = H * N, t0 = this.#now();
    if (N % 4) {
      if (this.#id === 0) {
        for (const s of segs) {
          const at = (b: Float32Array) => b.subarray(s.start * A, (s.start + s.length) * A);
          const ws = decayPerToken ? at(w) : w;
          wkv5TS(s.state[slot], at(r), at(k), at(v), ws, u, at(y), H, N, s.length, decayPerToken);
        }
      }
    } else {
      const [h0, h1] = share(H, this.#id, this.#n), o = h0 * N * 4;
      for (const s of segs) {
        if (h1 <= h0) break;
        const t = s.start * A * 4;
        this.#k.wkv5(
          s.state[slot].byteOffset + o * N,
          r.byteOffset + t + o,
          k.byteOffset + t + o,
          v.byteOffset + t + o,
          w.byteOffset + (decayPerToken ? t : 0) + o,
          u.byteOffset + o,
          y.byteOffset + t + o,
          h1 - h0,
          N,
          s.length,
          A,
          decayPerToken ? A : 0,
        );
      }
    }
    this.#took(PROFILE.recurrence, t0);
    this.#meet();
  }
}

/** The TypeScript time mix's arguments for one segment. */
function segmentArgs(a: V7TimeMixArgs<Float32Array>, s: Seg) {
  const C = a.H * a.N, at = (b: Float32Array) => b.subarray(s.start * C, (s.start + s.length) * C);
  return {
    ...a,
    T: s.length,
    al: at(a.al),
    wl: at(a.wl),
    vl: at(a.vl),
    v: at(a.v),
    vFirst: at(a.vFirst),
    k: at(a.k),
    wDecay: at(a.wDecay),
    vMix: at(a.vMix),
    kkN: at(a.kkN),
    kkA: at(a.kkA),
    kMod: at(a.kMod),
    S: s.state[a.S],
    r: at(a.r),
    y: at(a.y),
    g: at(a.g),
    out: at(a.out),
  };
}
