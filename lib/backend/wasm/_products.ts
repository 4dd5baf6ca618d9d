/**
 * A member's share of the team's matrix products: its rows, claimed in chunks from the shared
 * counters (see `_schedule.ts`), computed by the WebAssembly kernels from an input prepared once
 * per product in its private scratch.
 * @module
 */

import type { Product } from "../../model/ops.ts";
import type { Matrix } from "../../model/tensor.ts";
import { type Kernels, quantizedBytes } from "./kernels.ts";
import { PROFILE, type Profiler } from "./_profile.ts";
import { CLAIM_SLOTS, CTRL } from "./_protocol.ts";
import type { Region } from "./_region.ts";
import { CHUNK_BYTES, GROUP_MAX, type GroupPlan, groupPlan, rowShare } from "./_schedule.ts";

/**
 * Bytes of a member's product scratch for products of up to `maxT` tokens and `maxCols`
 * columns: the quantized activations of q8/q4, or one reordered f32 input of bf16.
 */
export function productScratchBytes(maxT: number, maxCols: number): number {
  return Math.max(quantizedBytes(Math.ceil((maxT * maxCols) / 32) * 32), 4 * maxCols) + 64;
}

/**
 * One member's products: the claim counters' bases, the chunk bounds and group plans (cached by
 * matrix), and the scratch its inputs are prepared in. The caller meets the team after a call
 * (the barrier is not the products' business, but for reusing claim counters: `meet`).
 * @example
 * ```ts
 * import { barrier } from "./_barrier.ts";
 * import type { Profiler } from "./_profile.ts";
 * import type { Region } from "./_region.ts";
 * import type { Kernels } from "./kernels.ts";
 * import type { Matrix } from "../../model/tensor.ts";
 * declare const kernels: Kernels, ctrl: Int32Array, id: number, n: number, priv: Region;
 * declare const scratch: number, prof: Profiler, m: Matrix, x: Float32Array, y: Float32Array;
 * const T = 1; // tokens
 * const products = new Products([kernels], ctrl, id, n, priv, scratch, prof, () => barrier(ctrl, n));
 * products.one(m, x, y, T, 0);
 * ```
 */
export class Products {
  readonly #k: Kernels;
  /** The kernels reading each arena memory's matrices (`Matrix.memory` indexes it). */
  readonly #byMemory: readonly Kernels[];
  readonly #ctrl: Int32Array;
  readonly #id: number;
  readonly #n: number;
  readonly #prof: Profiler;
  readonly #meet: () => void;
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

  /** See `WorkerOps`' constructor for the sizes; `meet`: the team's barrier. */
  constructor(
    kernels: readonly Kernels[],
    ctrl: Int32Array,
    id: number,
    n: number,
    priv: Region,
    scratchBytes: number,
    prof: Profiler,
    meet: () => void,
    chunkBytes = CHUNK_BYTES,
    decodeScratchBytes = scratchBytes,
  ) {
    this.#k = kernels[0];
    this.#byMemory = kernels;
    this.#ctrl = ctrl;
    this.#id = id;
    this.#n = n;
    this.#prof = prof;
    this.#meet = meet;
    this.#chunkBytes = chunkBytes;
    this.#xq = priv.bytes(scratchBytes);
    this.#groupXq = n > 1
      ? Array.from({ length: GROUP_MAX }, () => priv.bytes(decodeScratchBytes))
      : [];
  }

  /**
   * This member's rows of each product in turn (no barrier after the last: the caller meets);
   * decoding a small group, as one run of rows ({@link GroupPlan}).
   */
  many(products: Product<Float32Array, Matrix>[], T: number): void {
    if (T === 1 && this.#n > 1 && products.length > 1 && products.length <= GROUP_MAX) {
      this.#group(products);
    } else {
      products.forEach(([m, x, y], j) => {
        if (j > 0 && j % CLAIM_SLOTS === 0) this.#meet(); // the counters are about to be reused
        this.one(m, x, y, T, j % CLAIM_SLOTS);
      });
    }
  }

  /** Rows [r0, r1) of each product, computed by this member alone (no claims, no barrier). */
  rowsOf(products: Product<Float32Array, Matrix>[], T: number, r0: number, r1: number): void {
    for (const [m, x, y] of products) {
      const t0 = this.#prof.now();
      this.#prepare(m, x, T, this.#xq);
      this.#rows(m, this.#xq, x, y, T, r0, r1);
      this.#prof.took(PROFILE[m.dtype], t0);
    }
  }

  /**
   * Decoding several products at once: their rows, taken in the order the matrices lie in
   * memory, form one run that members claim in chunks as one product's (see {@link GroupPlan}),
   * a chunk crossing from one matrix into the next; so each member reads long sequential runs
   * however small the matrices (three 1024 × 1024 q4 matrices are 640 KiB each). Each input is
   * prepared first into a scratch of its own.
   */
  #group(products: Product<Float32Array, Matrix>[]): void {
    products.forEach(([m, x], j) => {
      const t = this.#prof.now();
      this.#prepare(m, x, 1, this.#groupXq[j]);
      this.#prof.took(PROFILE[m.dtype], t);
    });
    const plan = this.#groupPlan(products);
    const base = this.#claimBase[0], chunks = plan.starts.length - 1;
    for (;;) {
      const i = (Atomics.add(this.#ctrl, CTRL.claim, 1) - base) | 0;
      if (i >= chunks) break;
      for (let q = plan.starts[i]; q < plan.starts[i + 1]; q++) {
        const j = plan.product[q], [m, x, y] = products[j], t = this.#prof.now();
        this.#rows(m, this.#groupXq[j], x, y, 1, plan.r0[q], plan.r1[q]);
        this.#prof.took(PROFILE[m.dtype], t);
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
  one(m: Matrix, x: Float32Array, y: Float32Array, T: number, slot: number): void {
    const t0 = this.#prof.now(), n = this.#n;
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
    this.#prof.took(PROFILE[m.dtype], t0);
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
    const k = this.#byMemory[m.memory ?? 0];
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
}
