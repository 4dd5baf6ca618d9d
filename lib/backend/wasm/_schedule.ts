/**
 * How a team splits work: products' rows claimed in guided chunks (whole cache lines of the
 * output, shrinking towards a product's end), recurrences' heads and channels in near-even runs.
 * @module
 */

import type { Matrix } from "../../model/tensor.ts";

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

/** The most products of one `matmuls` call decoded as one group (RWKV-7's first has seven). */
export const GROUP_MAX = 8;

/** Bytes a row of `m` reads when decoding: q8 36 and q4 20 per block of 32 with their scales. */
function rowBytes(m: Matrix): number {
  return m.cols *
    (m.dtype === "f32" ? 4 : m.dtype === "q8" ? 36 / 32 : m.dtype === "q4" ? 20 / 32 : 2);
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
 * ```ts
 * import type { Matrix } from "../../model/tensor.ts";
 * declare const r: Matrix, k: Matrix, v: Matrix;
 * const plan = groupPlan([r, k, v], 2, CHUNK_BYTES);
 * ```
 */
export function groupPlan(mats: readonly Matrix[], n: number, chunkBytes: number): GroupPlan {
  const order = mats.map((_, j) => j)
    .sort((a, b) =>
      (mats[a].memory ?? 0) - (mats[b].memory ?? 0) || mats[a].offset - mats[b].offset
    );
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
