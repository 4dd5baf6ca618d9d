/**
 * Small assertion helpers over `node:assert` (JSR's @std/assert is not reachable here).
 * @module
 */

import nodeAssert from "node:assert";

/** Fails with `msg` unless `cond` is truthy. */
export function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg);
}

/** Deep strict equality (typed arrays compared element by element). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

/** Asserts `fn` throws an instance of `cls`; returns the error. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: new (...args: never[]) => E,
  includes?: string | RegExp,
): E {
  try {
    fn();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes !== undefined) checkMessage(e as Error, includes);
    return e as E;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

/** Asserts the promise from `fn` rejects with an instance of `cls`; returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  cls: new (...args: never[]) => E = Error as unknown as new (...args: never[]) => E,
  includes?: string | RegExp,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes !== undefined) checkMessage(e as Error, includes);
    return e as E;
  }
  throw new Error(`expected a rejection with ${cls.name}`);
}

function checkMessage(e: Error, includes: string | RegExp): void {
  const ok = typeof includes === "string" ? e.message.includes(includes) : includes.test(e.message);
  nodeAssert.ok(ok, `error message ${JSON.stringify(e.message)} lacks ${includes}`);
}

/** Largest absolute difference between two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  nodeAssert.strictEqual(a.length, b.length, "lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Asserts every element of `actual` is within `tol` of `expected`. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = "values",
): void {
  const d = maxAbsDiff(actual, expected);
  nodeAssert.ok(d <= tol, `${what}: max abs diff ${d} > ${tol}`);
}
