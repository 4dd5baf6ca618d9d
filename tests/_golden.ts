/**
 * The official reference outputs in `../shared/fixtures/ref-*.json`, and a checker any
 * engine's model can be run through.
 * @module
 */

import { openCheckpoint } from "../lib/formats/open.ts";
import type { Model } from "../lib/model/model.ts";
import { FIXTURES_DIR, listFixtures } from "../testing/fixtures.ts";
import { assert, assertEquals, maxAbsDiff } from "./_assert.ts";

/** One ref-*.json file. */
export interface Golden {
  file: string;
  model: string;
  official_version: string;
  tokens_A: number[];
  logits_A: number[];
  tokens_B: number[];
  logits_B_last: number[];
  argmax_B_each_step: number[];
  state_after_B_file: string;
  state_after_B_tensor_shapes: number[][];
}

/** Every golden reference available (none when fixtures are absent and not required). */
export function goldens(): Golden[] {
  return listFixtures(/^ref-.*\.json$/, "", "the official references (ref-*.json)").map((f) => ({
    file: f,
    ...JSON.parse(Deno.readTextFileSync(`${FIXTURES_DIR}/${f}`)),
  }));
}

/** The model file a golden reference was computed from. */
export function goldenModelPath(g: Golden): string {
  return `${FIXTURES_DIR}/${g.model}`;
}

/** Opens a golden's checkpoint. */
export function openGolden(g: Golden) {
  return openCheckpoint(goldenModelPath(g));
}

function argmax(a: ArrayLike<number>, o = 0, n = a.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (a[o + i] > a[o + best]) best = i;
  return best;
}

/** Max abs differences of a model against a golden reference (see the fixtures README). */
export async function compareToGolden(model: Model, g: Golden): Promise<{
  logitsA: number;
  logitsBLast: number;
  state: number;
  argmaxAgreement: number;
  seqVsSerial: number;
}> {
  // A, token by token
  let s = model.createState();
  let logits: Float32Array = new Float32Array(0);
  for (const t of g.tokens_A) logits = await model.forward([t], s);
  const logitsA = maxAbsDiff(logits, g.logits_A);
  // B, token by token: argmax at every step, final logits and state
  s = model.createState();
  let agree = 0;
  const serial: Float32Array[] = [];
  for (let i = 0; i < g.tokens_B.length; i++) {
    logits = await model.forward([g.tokens_B[i]], s);
    serial.push(logits);
    if (argmax(logits) === g.argmax_B_each_step[i]) agree++;
  }
  const logitsBLast = maxAbsDiff(logits, g.logits_B_last);
  const refState = new Float32Array(
    (await Deno.readFile(`${FIXTURES_DIR}/${g.state_after_B_file}`)).buffer,
  );
  assertEquals(
    s.tensors.map((t) => t.length),
    g.state_after_B_tensor_shapes.map((sh) => sh.reduce((a, b) => a * b, 1)),
    "state tensor sizes match the reference layout",
  );
  const state = maxAbsDiff(s.data, refState);
  // B in one call, every position, against the serial run
  const all = await model.forwardAll(g.tokens_B, model.createState());
  let seqVsSerial = 0;
  const V = model.info.vocab;
  for (let i = 0; i < serial.length; i++) {
    seqVsSerial = Math.max(seqVsSerial, maxAbsDiff(all.subarray(i * V, (i + 1) * V), serial[i]));
  }
  return {
    logitsA,
    logitsBLast,
    state,
    argmaxAgreement: agree / g.tokens_B.length,
    seqVsSerial,
  };
}

/** Asserts the acceptance bounds of an exact (float) engine. */
export async function assertMatchesGolden(model: Model, g: Golden, tol = 1e-4): Promise<void> {
  const r = await compareToGolden(model, g);
  const what = `${g.file} on ${model.info.engine} ${model.info.dtype}`;
  assert(r.logitsA <= tol, `${what}: logits_A max abs diff ${r.logitsA}`);
  assert(r.logitsBLast <= tol, `${what}: logits_B_last max abs diff ${r.logitsBLast}`);
  assert(r.state <= tol, `${what}: state after B max abs diff ${r.state}`);
  assertEquals(r.argmaxAgreement, 1, `${what}: argmax along B`);
  assert(r.seqVsSerial <= 1e-5, `${what}: whole-B call vs token by token ${r.seqVsSerial}`);
}
