/**
 * The fast engine (Workers + WebAssembly SIMD) against the official references and against
 * itself across worker counts.
 */
import { createFastModel } from "../lib/fast/pool.ts";
import { assertMatchesGolden, compareToGolden, goldens, openGolden } from "./_golden.ts";
import { assert, assertEquals } from "./_assert.ts";

const all = goldens();

for (const g of all) {
  Deno.test(`fast engine: ${g.file} at f32 storage, 2 workers, matches the official logits`, async () => {
    const ck = await openGolden(g);
    const model = await createFastModel(ck, { dtype: "f32", threads: 2 });
    try {
      await assertMatchesGolden(model, g);
    } finally {
      await model.dispose();
      ck.close();
    }
  });
}

for (const g of all.filter((g) => /bf16/.test(g.file))) {
  Deno.test(`fast engine: ${g.file} at bf16 storage (the file's own dtype) matches`, async () => {
    const ck = await openGolden(g);
    const model = await createFastModel(ck, { dtype: "bf16", threads: 2 });
    try {
      assertEquals(model.info.dtype, "bf16");
      await assertMatchesGolden(model, g);
    } finally {
      await model.dispose();
      ck.close();
    }
  });
}

for (const g of all.filter((g) => /^ref-(4v0|6v0-bf16|7v0)\.json$/.test(g.file))) {
  for (const dtype of ["bf16", "q8", "q4"] as const) {
    Deno.test(`fast engine: ${g.file} ${dtype} gives identical results with 1 and 2 workers`, async () => {
      const ck = await openGolden(g);
      const one = await createFastModel(ck, { dtype, threads: 1 });
      const two = await createFastModel(ck, { dtype, threads: 2 });
      try {
        const a = await one.forwardAll(g.tokens_B, one.createState());
        const b = await two.forwardAll(g.tokens_B, two.createState());
        assertEquals(a, b);
      } finally {
        await one.dispose();
        await two.dispose();
        ck.close();
      }
    });
  }
}

/**
 * Quantized storage is approximate. Measured on the fixtures (tiny models of 64–128 channels,
 * the most sensitive case, with near-tied logits): q8 keeps the official argmax at ≥ 96.8 % of
 * the steps of B (5v1; 98.9–100 % elsewhere) with logits within 0.12; q4 at ≥ 84 % within 1.2.
 * The q8 agreement moved from 98.9 % to 96.8 % on 5v1 when the kernel's summation order changed
 * (four blocks reduced together), with the same logits to 1e-6: two near-ties flipped. Bounds
 * sit just outside these figures.
 */
const QUANT_BOUNDS = { q8: { argmax: 0.95, logits: 0.2 }, q4: { argmax: 0.8, logits: 1.5 } };

for (const g of all) {
  for (const dtype of ["q8", "q4"] as const) {
    Deno.test(`fast engine: ${g.file} ${dtype} stays close to the official logits`, async () => {
      const ck = await openGolden(g);
      const model = await createFastModel(ck, { dtype, threads: 2 });
      try {
        const r = await compareToGolden(model, g);
        const b = QUANT_BOUNDS[dtype];
        assert(r.argmaxAgreement >= b.argmax, `argmax agreement ${r.argmaxAgreement}`);
        assert(
          Math.max(r.logitsA, r.logitsBLast) <= b.logits,
          `logits ${r.logitsA} ${r.logitsBLast}`,
        );
        assert(r.seqVsSerial <= 1e-5, `seq vs serial ${r.seqVsSerial}`);
      } finally {
        await model.dispose();
        ck.close();
      }
    });
  }
}
