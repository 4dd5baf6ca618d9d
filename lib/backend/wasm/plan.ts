/**
 * Where each buffer of a forward pass lives in the Worker team's memory, found by running the pass
 * once over placeholder buffers and watching which operation writes what.
 *
 * The team splits matrix products by rows and recurrences by heads (RWKV-4's by channels), each
 * member writing its part of one shared buffer; every other step is computed alike by every
 * member into a buffer of its own. So a buffer written by a split step is shared, any other is
 * private; likewise a state tensor the recurrences update in place is shared, and those updated
 * by per-member steps (token shift's last row) get a copy per member.
 * @module
 */

import type {
  MatrixShape,
  Ops,
  Product,
  Segment,
  V7TimeMixArgs,
  WeightSource,
  Wkv4Args,
} from "../../model/ops.ts";

/** A placeholder buffer: its index in creation order (weights: −1). */
export interface Slot {
  readonly id: number;
}

const WEIGHT: Slot = { id: -1 };

/** Where each buffer and state tensor goes. */
export interface Placement {
  /** Values in each buffer, in creation order. */
  readonly sizes: number[];
  /** Indices of the buffers written by split steps (shared by the team). */
  readonly shared: number[];
  /** Indices of the state tensors updated by split steps (shared); the rest are per member. */
  readonly sharedState: number[];
}

class PlanningOps implements Ops<Slot, MatrixShape> {
  readonly sizes: number[] = [];
  readonly split = new Set<number>();
  readonly alike = new Set<number>();
  readonly splitState = new Set<number>();
  readonly alikeState = new Set<number>();

  #split(...b: Slot[]) {
    for (const x of b) this.#write(x, this.split);
  }
  #alike(...b: Slot[]) {
    for (const x of b) this.#write(x, this.alike);
  }
  #write(b: Slot, set: Set<number>) {
    if (b.id < 0) throw new Error("a forward pass wrote into a weight");
    set.add(b.id);
  }

  buffer(n: number): Slot {
    this.sizes.push(n);
    return { id: this.sizes.length - 1 };
  }
  embed(_m: MatrixShape, _t: ArrayLike<number>, out: Slot) {
    this.#alike(out);
  }
  matmul(_m: MatrixShape, _x: Slot, y: Slot) {
    this.#split(y);
  }
  matmuls(products: Product<Slot, MatrixShape>[]) {
    for (const [, , y] of products) this.#split(y);
  }
  norm(_x: Slot, _w: Slot, _b: Slot, out: Slot) {
    this.#alike(out);
  }
  act(_k: unknown, _x: Slot, out: Slot) {
    this.#alike(out);
  }
  shift(_c: Slot, _s: readonly Segment<Slot>[], _slot: number, _m: Slot, out: Slot) {
    this.#alike(out);
  }
  keepLast(_src: Slot, _s: readonly Segment<Slot>[], slot: number) {
    this.alikeState.add(slot);
  }
  tmix(_op: unknown, _x: Slot, _dx: Slot, _b: Slot, _o: Slot, out: Slot) {
    this.#alike(out);
  }
  columns(_s: Slot, _st: number, _o: number, _w: number, out: Slot) {
    this.#alike(out);
  }
  add(x: Slot) {
    this.#alike(x);
  }
  sigmoidMulAdd(_r: Slot, _v: Slot, x: Slot) {
    this.#alike(x);
  }
  siluMul(_g: Slot, y: Slot) {
    this.#alike(y);
  }
  wkv4(a: Wkv4Args<Slot>) {
    this.#split(a.out);
    for (const s of [a.aa, a.bb, a.pp]) this.splitState.add(s);
  }
  wkv5(slot: number, _r: Slot, _k: Slot, _v: Slot, _w: Slot, _u: Slot, y: Slot) {
    this.#split(y);
    this.splitState.add(slot);
  }
  v7TimeMix(a: V7TimeMixArgs<Slot>) {
    // each member writes its heads' part of the scratch and reads back only that part
    this.#alike(a.vFirst, a.wDecay, a.vMix, a.kkN, a.kkA, a.kMod, a.y);
    this.#split(a.out);
    this.splitState.add(a.S);
  }
  lastRows(_src: Slot, _s: readonly Segment<Slot>[], out: Slot) {
    this.#alike(out);
  }
}

/**
 * Runs `bind` (which binds a forward pass to the given weights and operations) over placeholder
 * buffers and one pass of each kind, and returns where every buffer must live. Throws if a
 * buffer is written both by a split step and by a per-member step (the `Ops` contract forbids
 * it: the team could not share it safely).
 * @example
 * ```ts
 * import { createRunner } from "../../model/model.ts";
 * import type { MatrixShape, WeightSource } from "../../model/ops.ts";
 * declare const weights: WeightSource<unknown, MatrixShape>, path: string, stateCount: number;
 * const p = planPlacement(weights, (w, ops) => createRunner(w, ops, 64, path), stateCount);
 * ```
 */
export function planPlacement<M extends MatrixShape>(
  weights: WeightSource<unknown, M>,
  bind: (
    w: WeightSource<Slot, M>,
    ops: Ops<Slot, MatrixShape>,
  ) => { forward(t: ArrayLike<number>, s: readonly Segment<Slot>[], e: boolean): Slot },
  stateTensors: number,
): Placement {
  const ops = new PlanningOps();
  const w: WeightSource<Slot, M> = {
    spec: weights.spec,
    has: (n) => weights.has(n),
    vec: (n, len) => (weights.vec(n, len), WEIGHT),
    mat: (n, r, c) => weights.mat(n, r, c),
  };
  const runner = bind(w, ops);
  const state = Array.from({ length: stateTensors }, () => WEIGHT);
  for (const every of [false, true]) runner.forward([0], [{ start: 0, length: 1, state }], every);
  for (const id of ops.split) {
    if (ops.alike.has(id)) {
      throw new Error(`buffer ${id} is written by a split step and by a per-member step`);
    }
  }
  for (const s of ops.splitState) {
    if (ops.alikeState.has(s)) {
      throw new Error(`state tensor ${s} is updated by a split step and by a per-member step`);
    }
  }
  return { sizes: ops.sizes, shared: [...ops.split], sharedState: [...ops.splitState] };
}
