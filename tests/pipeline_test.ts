/**
 * `Pipeline` against the official `PIPELINE` arithmetic (ChatRWKV rwkv_pip_package utils.py):
 * crafted logits from a stand-in model, greedy draws (temperature 0), and the expected token
 * sequences worked out by hand in the comments; the sampling distribution of `sample_logits`;
 * encode/decode on the fixtures' tokenizers; and a real model end to end.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { Pipeline, PIPELINE_ARGS, type PipelineArgs, type PipelineModel } from "../lib/pipeline.ts";
import type { State } from "../lib/model/state.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { loadModel } from "../lib/load.ts";

const A = 65, B = 66, C = 67, SPACE = 32;

/** A stand-in model: the same crafted logits after every call; records call lengths. */
function crafted(values: Record<number, number>): PipelineModel & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    createState: () => ({}) as State,
    forward(tokens) {
      calls.push(tokens.length);
      const out = new Float32Array(256).fill(-1e9);
      for (const [id, v] of Object.entries(values)) out[Number(id)] = v;
      return Promise.resolve(out);
    },
  };
}

async function run(
  values: Record<number, number>,
  args: Partial<PipelineArgs>,
  count = 5,
): Promise<string> {
  const p = new Pipeline(crafted(values), await loadTokenizer("bytes"));
  return await p.generate("x", count, { temperature: 0, ...args });
}

Deno.test("pipeline: PIPELINE_ARGS defaults are the official ones", () => {
  assertEquals({ ...PIPELINE_ARGS }, {
    temperature: 1.0,
    top_p: 0.85,
    top_k: 0,
    alpha_frequency: 0.2,
    alpha_presence: 0.2,
    alpha_decay: 0.996,
    token_ban: [],
    token_stop: [],
    chunk_len: 256,
  });
});

Deno.test("pipeline: presence penalty is paid once, frequency per occurrence", async () => {
  const logits = { [A]: 5, [B]: 4.8 };
  const none = { alpha_presence: 0, alpha_frequency: 0 };
  assertEquals(await run(logits, none), "AAAAA");
  // presence 0.3: A 5 → 4.7 after its first use, for good; B 4.8 → 4.5. Steps: A (A 4.7 < B
  // 4.8) B (A 4.7 > B 4.5) A A A.
  assertEquals(await run(logits, { ...none, alpha_presence: 0.3 }), "ABAAA");
  // frequency 0.3, no decay: A 5 − 0.3·n, B 4.8 − 0.3·m. A(4.7) B(4.5) A(4.4) B(4.2) A.
  assertEquals(
    await run(logits, { ...none, alpha_frequency: 0.3, alpha_decay: 1 }),
    "ABABA",
  );
});

Deno.test("pipeline: counts decay by alpha_decay each step before the new token counts", async () => {
  const logits = { [A]: 5, [B]: 4.6, [C]: 4.2 };
  const args = { alpha_presence: 0, alpha_frequency: 1 };
  // no decay: A(A:1) → A 4 < B 4.6: B(B:1) → A 4, B 3.6 < C 4.2: C(C:1) → A 4 best: A(A:2) →
  // A 3, B 3.6, C 3.2: B.
  assertEquals(await run(logits, { ...args, alpha_decay: 1 }), "ABCAB");
  // decay 0.5: A(A:1) → A 4 < B 4.6: B (A:.5, B:1) → A 4.5, B 3.6, C 4.2: A (A:.25+1, B:.5)
  // → A 3.75, B 4.1, C 4.2: C (A:.625, B:.25, C:1) → A 4.375, B 4.35, C 3.2: A.
  assertEquals(await run(logits, { ...args, alpha_decay: 0.5 }), "ABACA");
  // the default 0.996 with the default penalties (0.2, 0.2): A 5, B 4.9, C 4.5.
  // A (A:1) → A 4.6 < B 4.9: B (A:.996, B:1) → A 5−.2−.1992 = 4.6008 > B 4.5, C 4.5: A
  // (A:1.992016, B:.996) → A 4.4016, B 4.9−.2−.1992 = 4.5008 > C 4.5: B.
  assertEquals(await run({ [A]: 5, [B]: 4.9, [C]: 4.5 }, {}, 4), "ABAB");
});

Deno.test("pipeline: spaces and digits count 0 (presence only), as the official www rule", async () => {
  // ' ' 5, A 4.85, default penalties. ' ' (count 0, but present) → ' ' 4.8 < A 4.85: A →
  // ' ' 4.8 > A 4.45: ' ' → ' ' 4.8 > A 4.85 − .2 − .1992 = 4.4508: ' '. (Counted as 1, the
  // fourth token would be A: ' ' 4.4016 < A 4.4508.)
  assertEquals(await run({ [SPACE]: 5, [A]: 4.85 }, {}, 4), " A  ");
});

Deno.test("pipeline: token_ban is never sampled, token_stop ends before emitting", async () => {
  const logits = { [A]: 5, [B]: 4.6, [C]: 4.2 };
  const args = { alpha_presence: 0, alpha_frequency: 1, alpha_decay: 1 };
  // without A: B(B:1) → B 3.6 < C 4.2: C → B 3.6 > C 3.2: B → B 2.6 < C 3.2: C → B.
  assertEquals(await run(logits, { ...args, token_ban: [A] }), "BCBCB");
  assertEquals(await run(logits, { ...args, token_stop: [C] }), "AB");
  assertEquals(await run(logits, { ...args, token_stop: [A] }), "");
  // token 0 (the NUL byte here) does not stop anything unless listed, as in the official code
  assertEquals(await run({ 0: 5 }, { alpha_presence: 0, alpha_frequency: 0 }, 3), "\0\0\0");
  assertEquals(await run({ 0: 5 }, { token_stop: [0] }, 3), "");
});

Deno.test("pipeline: the context is fed in chunk_len pieces, then one token per step", async () => {
  const model = crafted({ [A]: 1 });
  const p = new Pipeline(model, await loadTokenizer("bytes"));
  await p.generate("0123456789", 3, { chunk_len: 4 });
  assertEquals(model.calls, [4, 4, 2, 1, 1]);
});

Deno.test("pipeline: sample_logits: nucleus cut-off (ties kept), then top-k, then temperature", async () => {
  const p = new Pipeline(crafted({}), await loadTokenizer("bytes"));
  const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
  const close = (a: Float64Array, b: number[]) =>
    assert(b.every((v, i) => Math.abs(a[i] - v) < 1e-12), `${[...a]} vs ${b}`);
  // cumulative 0.5, 0.8 ≥ 0.7: cut-off 0.3, renormalised
  close(p.probabilities(logits, 1, 0.7), [0.625, 0.375, 0, 0]);
  // a tie at the cut-off is kept: 0.3, 0.3 both stay when the nucleus ends on one of them
  const tied = [0.4, 0.3, 0.3].map(Math.log);
  close(p.probabilities(tied, 1, 0.6), [0.4, 0.3, 0.3]);
  close(p.probabilities(tied, 1, 0.3), [1, 0, 0]);
  // then probs ** (1/T): √.5, √.3 renormalised
  const s = Math.sqrt(0.5) + Math.sqrt(0.3);
  close(p.probabilities(logits, 2, 0.7), [Math.sqrt(0.5) / s, Math.sqrt(0.3) / s, 0, 0]);
  close(p.probabilities(logits, 1, 1, 1), [1, 0, 0, 0]);
  close(p.probabilities(logits, 1, 1, 3), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]);
  // temperature 0: top_p 0, the most likely token; ties all kept
  close(p.probabilities([1, 3, 3, 0], 0), [0, 0.5, 0.5, 0]);
  // draws follow the distribution: the uniform number picks the bucket
  assertEquals(p.sampleLogits(logits, 1, 0.7, 0, () => 0.6), 0);
  assertEquals(p.sampleLogits(logits, 1, 0.7, 0, () => 0.63), 1);
});

const world = fixture("tokenizers/rwkv_vocab_v20230424.txt");
const neox = fixture("tokenizers/20B_tokenizer.json");
for (
  const [name, path, ref] of [
    ["World", world, "ref-world.json"],
    ["20B", neox, "ref-20b.json"],
  ] as const
) {
  Deno.test({
    name: `pipeline: encode/decode round-trip the ${name} tokenizer's reference cases`,
    ignore: !path,
    fn: async () => {
      const p = await Pipeline.load(crafted({}), path!);
      const cases: { text: string; ids: number[] }[] =
        JSON.parse(await Deno.readTextFile(fixture(`tokenizers/${ref}`)!)).cases;
      assert(cases.length >= 5);
      for (const c of cases) {
        assertEquals(p.encode(c.text), c.ids, JSON.stringify(c.text));
        assertEquals(p.decode(c.ids), c.text, JSON.stringify(c.text));
      }
    },
  });
}

const st7 = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "pipeline: on a real model, a seed repeats the text and the state goes on from it",
  ignore: !st7,
  fn: async () => {
    const model = await loadModel(st7!, { threads: 2 });
    try {
      const p = await Pipeline.load(model, "bytes");
      const pieces: string[] = [];
      const s1 = model.createState();
      const a = await p.generate("In a shocking", 30, { seed: 5 }, (t) => pieces.push(t), s1);
      const b = await p.generate("In a shocking", 30, { seed: 5 });
      assertEquals(a, b);
      assertEquals(pieces.join(""), a);
      assertEquals(p.decode(p.encode(a)), a);
      // greedy, the official way (temperature 0): the argmax of the model's own logits
      const g = await p.generate("In a", 1, { temperature: 0, alpha_presence: 0 });
      const logits = await model.forward(p.encode("In a"), model.createState());
      assertEquals(g.charCodeAt(0), logits.indexOf(Math.max(...logits)));
    } finally {
      await model.dispose();
    }
  },
});
