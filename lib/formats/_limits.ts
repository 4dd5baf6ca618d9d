/**
 * Budgets of one open: the caller's limits over the defaults, and counters that fail with a
 * FormatError naming the file and the budget the moment one is spent.
 * @module
 */

import { FormatError } from "../errors.ts";
import { type CheckpointLimits, DEFAULT_LIMITS } from "./checkpoint.ts";

/** Every budget, resolved. */
export type Limits = Required<CheckpointLimits>;

/** The caller's limits over the defaults; a limit that is not a non-negative number is refused. */
export function resolveLimits(given: CheckpointLimits | undefined): Limits {
  const out = { ...DEFAULT_LIMITS } as Record<string, number>;
  for (const [k, v] of Object.entries(given ?? {})) {
    if (v === undefined) continue;
    if (!Object.hasOwn(DEFAULT_LIMITS, k)) throw new TypeError(`unknown limit "${k}"`);
    if (typeof v !== "number" || !(v >= 0)) {
      throw new TypeError(`limits.${k} must be a non-negative number, got ${v}`);
    }
    out[k] = v;
  }
  return out as Limits;
}

/** The error of a spent budget: names the file, the budget and how to raise it. */
export function overBudget(
  file: string,
  limit: keyof Limits,
  value: number,
  what: string,
): FormatError {
  return new FormatError(
    file,
    `limits.${limit}`,
    `${what} goes past the budget of ${value} (a hostile or corrupt file?); if the file is ` +
      `trusted, open it with a larger limits.${limit}`,
  );
}

/** A budget spent as work happens. */
export class Counter {
  #left: number;
  constructor(
    readonly file: string,
    readonly limit: keyof Limits,
    readonly value: number,
    readonly what: string,
  ) {
    this.#left = value;
  }
  /** Spends `n`; throws once the budget is gone. */
  spend(n: number): void {
    this.#left -= n;
    if (this.#left < 0) throw overBudget(this.file, this.limit, this.value, this.what);
  }
}

/** Throws when `n` is over budget `limit`. */
export function check(file: string, limits: Limits, limit: keyof Limits, n: number, what: string) {
  if (n > limits[limit]) throw overBudget(file, limit, limits[limit], `${what} (${n})`);
}
