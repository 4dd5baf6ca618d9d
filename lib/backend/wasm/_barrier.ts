/**
 * The team's barrier over the control block (see `_protocol.ts`).
 * @module
 */

import { CTRL } from "./_protocol.ts";

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
