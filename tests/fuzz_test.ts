/**
 * The loaders under attack: a fixed, seeded set of hostile files for each attack class (key
 * naming blow-ups, pickle VM memory, deflated storages, torch semantics, many small entries,
 * the Rust SafeTensors rules, pickle and zip rules) plus seeded mutants of the fixtures and of
 * crafted files. Each case runs in its own process, killed past 20 s or 1 GiB of RSS; it must
 * end in a typed error naming the file (matching what the reference refuses) or read exactly
 * what the reference reads, within 5 s and 1 GiB. Longer campaigns: `tests/fuzz_campaign.ts --cases N`.
 * @module
 */

import { assert } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import {
  attackCases,
  craftedMutantCases,
  dataFlipCases,
  type FuzzCase,
  modelShapeCases,
  MUTANT_BASES,
  mutantCases,
  runPool,
} from "./_fuzz.ts";

/** Runs `cases` two at a time (the machine has two cores) and fails listing every problem. */
async function runAll(cases: FuzzCase[]): Promise<void> {
  const problems: string[] = [];
  await runPool(cases, 2, (c, _, { problem }) => {
    if (problem) problems.push(`[${c.cls}] ${c.name}: ${problem}`);
  });
  assert(
    problems.length === 0,
    `${problems.length} of ${cases.length} cases:\n${problems.join("\n")}`,
  );
}

const attacks = attackCases();
for (const cls of [...new Set(attacks.map((c) => c.cls))]) {
  const cases = attacks.filter((c) => c.cls === cls);
  Deno.test(`fuzz: ${cls} (${cases.length} crafted cases)`, () => runAll(cases));
}

Deno.test("fuzz: SafeTensors data bytes flipped read exactly as flipped (12 seeded cases)", () =>
  runAll(dataFlipCases(12, 1)));

Deno.test("fuzz: crafted .pth, legacy and rwkv.cpp files mutated (60 seeded cases)", () =>
  runAll(craftedMutantCases(60, 1)));

for (const base of MUTANT_BASES) {
  const path = fixture(base);
  Deno.test({
    name: `fuzz: ${base} mutated (30 seeded cases)`,
    ignore: path === undefined,
    fn: () => runAll(mutantCases(path!, 30, 1)),
  });
}

const tiny7 = fixture("tiny-rwkv-7v0.safetensors");
{
  const cases = tiny7 ? modelShapeCases(tiny7) : [];
  Deno.test({
    name: `fuzz: model shapes that lie, through loadModel (${cases.length} crafted cases)`,
    ignore: !tiny7,
    fn: () => runAll(cases),
  });
}
