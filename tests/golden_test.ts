/**
 * The reference (plain TypeScript) path against the official implementation's outputs.
 */
import { createReferenceModel } from "../lib/backend/reference/mod.ts";
import { assertMatchesGolden, goldens, openGolden } from "./_golden.ts";
import { REQUIRE_FIXTURES } from "../testing/fixtures.ts";
import { assert } from "./_assert.ts";

const all = goldens();

Deno.test({
  name: "golden: reference fixtures are present",
  ignore: !REQUIRE_FIXTURES,
  fn: () => assert(all.length >= 7, `expected 7+ ref-*.json, found ${all.length}`),
});

for (const g of all) {
  Deno.test(`golden: reference path matches official ${g.file} (RWKV-${g.official_version})`, async () => {
    const ck = await openGolden(g);
    try {
      const model = await createReferenceModel(ck, { dtype: "f32" });
      await assertMatchesGolden(model, g);
    } finally {
      ck.close();
    }
  });
  // the arena of a model too large for one memory: matrices in memories of their own (64 KiB)
  Deno.test(`golden: reference path, matrices in memories of their own, matches official ${g.file}`, async () => {
    const ck = await openGolden(g);
    try {
      const model = await createReferenceModel(ck, { dtype: "f32", matrixMemoryBytes: 65536 });
      await assertMatchesGolden(model, g);
    } finally {
      ck.close();
    }
  });
}
