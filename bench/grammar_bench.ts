/**
 * Constrained decoding's cost, A/B in one process on RWKV-7 0.1B q8 with the World vocabulary
 * (a random-weight model with the real shapes, written by bench/make_model.ts into a temporary
 * folder, unless --model names a real one):
 *
 * 1. first mask: compiling a new schema, its Constraint and its first mask, with the
 *    tokenizer's trie cold (built on first use) and warm;
 * 2. per-token overhead in steady state: a greedy decoding loop of the model, constrained by a
 *    realistic schema (restarted whenever an output is finished), timing the constraint's work
 *    (mask, forced, accept) against the model's forward pass and the sampler;
 * 3. realistic outputs: the World tokenizations of varied documents valid for the schema
 *    (compact and pretty-printed) replayed through a Constraint of a freshly compiled schema:
 *    mask + forced + accept per token on the first pass (every state new) and on the next
 *    (steady state: states seen before), against the forward pass of (2);
 * 4. generate() A/B: ms per generated token unconstrained vs constrained, alternating rounds.
 *
 * Other processes share the CPU: every figure is the best of --rounds.
 *
 *   deno run -A bench/grammar_bench.ts [--model FILE] [--tokens 64] [--rounds 5] [--threads N]
 * @module
 */

import { parseArgs } from "node:util";
import { compileJsonSchema, Constraint } from "../lib/grammar/mod.ts";
import { generate } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { Sampler } from "../lib/sample.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { fixture } from "../testing/fixtures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    tokenizer: { type: "string" },
    tokens: { type: "string", default: "64" },
    rounds: { type: "string", default: "5" },
    threads: { type: "string" },
  },
});
const TOKENS = Number(values.tokens), ROUNDS = Number(values.rounds);
const vocabPath = values.tokenizer ?? fixture("tokenizers/rwkv_vocab_v20230424.txt");
if (!vocabPath) throw new Error("no World vocabulary: give --tokenizer");

const SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string" },
    age: { type: "integer", minimum: 0, maximum: 150 },
    email: { type: "string", maxLength: 40 },
    tags: { type: "array", items: { type: "string" }, maxItems: 5 },
    address: {
      type: "object",
      properties: { city: { type: "string" }, zip: { type: "string", minLength: 5, maxLength: 5 } },
      required: ["city"],
      additionalProperties: false,
    },
    active: { type: "boolean" },
  },
  required: ["name", "age", "tags"],
  additionalProperties: false,
};
const best = (xs: number[]) => Math.min(...xs);

const warmTokenizer = await loadTokenizer(vocabPath);
new Constraint(compileJsonSchema({ type: "null" }), warmTokenizer); // builds its trie

let tmp: string | undefined;
let modelPath = values.model;
if (!modelPath) {
  tmp = await Deno.makeTempDir({ prefix: "rwkv-grammar-bench-" });
  modelPath = `${tmp}/r7-0.1b.safetensors`;
  const make = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("make_model.ts", import.meta.url).pathname,
      ...["--preset", "7-0.1b", "--out", modelPath],
    ],
    stdout: "null",
  }).output();
  if (!make.success) throw new Error(new TextDecoder().decode(make.stderr));
}

try {
  // 1. First mask: the trie cold (first use of this tokenizer object), then warm.
  const firstMask: string[] = [];
  for (const cold of [true, false]) {
    const times: number[] = [];
    for (let r = 0; r < (cold ? 1 : ROUNDS); r++) {
      const tokenizer = cold ? await loadTokenizer(vocabPath) : warmTokenizer;
      const schema = { ...SCHEMA, title: `bench ${cold} ${r} ${Math.random()}` }; // a new schema
      const t0 = performance.now();
      const c = new Constraint(compileJsonSchema(schema), tokenizer);
      c.mask(new Float32Array(65536));
      times.push(performance.now() - t0);
    }
    firstMask.push(`${cold ? "trie cold" : "trie warm"} ${best(times).toFixed(1)} ms`);
  }
  console.log(`first mask of a new schema: ${firstMask.join(", ")}`);

  const model = await loadModel(modelPath, {
    dtype: "q8",
    threads: values.threads ? Number(values.threads) : undefined,
  });
  const tokenizer = warmTokenizer;
  const grammar = compileJsonSchema(SCHEMA);
  const prompt = tokenizer.encode("User: a person as JSON\n\nAssistant:");
  try {
    // 2. Per-token overhead, steady state: greedy loop, constraint timed apart.
    const base = model.createState();
    const promptLogits = await model.forward(prompt, base);
    const overhead: number[] = [], forwardMs: number[] = [], sampleMs: number[] = [];
    let seqs = 0, forcedTokens = 0;
    for (let r = 0; r < ROUNDS + 1; r++) {
      let tGrammar = 0, tForward = 0, tSample = 0, n = 0;
      const sampler = new Sampler({ temperature: 0 });
      let state = base.clone();
      let logits: Float32Array = promptLogits.slice();
      let c = new Constraint(grammar, tokenizer);
      while (n < TOKENS) {
        let t = performance.now();
        if (c.finished) {
          seqs++;
          c = new Constraint(grammar, tokenizer);
          state = base.clone();
          logits = promptLogits.slice();
        }
        const forced = c.forced();
        let tokens: number[];
        if (forced.length) {
          for (const x of forced) c.accept(x);
          tokens = forced;
          forcedTokens += forced.length;
          tGrammar += performance.now() - t;
        } else {
          c.mask(logits);
          let t2 = performance.now();
          tGrammar += t2 - t;
          const token = sampler.sample(logits);
          t = performance.now();
          tSample += t - t2;
          c.accept(token);
          t2 = performance.now();
          tGrammar += t2 - t;
          tokens = [token];
        }
        t = performance.now();
        logits = await model.forward(tokens, state);
        tForward += performance.now() - t;
        n += tokens.length;
      }
      if (r === 0) continue; // warm-up: first masks of the states
      overhead.push(tGrammar / n);
      forwardMs.push(tForward / n);
      sampleMs.push(tSample / n);
    }
    const g = best(overhead), f = best(forwardMs), s = best(sampleMs);
    console.log(
      `steady state, per generated token (best of ${ROUNDS} × ${TOKENS} tokens, ${seqs} outputs ` +
        `finished, ${forcedTokens} tokens forced): forward ${f.toFixed(2)} ms, sampler ` +
        `${s.toFixed(3)} ms, constraint ${g.toFixed(3)} ms = ${(100 * g / (f + s)).toFixed(1)} % ` +
        `of a token`,
    );

    // 3. Realistic outputs replayed: first pass (new states) and steady state.
    const docs = [
      { name: "Alice Johnson", age: 34, tags: ["engineer", "runner"], active: true },
      { name: "Bob", age: 7, email: "bob@example.com", tags: [], active: false },
      {
        name: "Zoë Ñandú",
        age: 150,
        tags: ["a", "b", "c", "d", "e"],
        address: { city: "São Paulo", zip: "01000" },
      },
      {
        name: "Charlie Brown",
        age: 42,
        email: "charlie@peanuts.com",
        tags: ["comic"],
        address: { city: "Minneapolis" },
      },
    ];
    const outputs = docs.flatMap((d) => [JSON.stringify(d), JSON.stringify(d, null, 2)])
      .map((t) => tokenizer.encode(t));
    const replay: number[][] = [[], []]; // ms per token: first pass, steady state
    for (let r = 0; r < ROUNDS; r++) {
      const fresh = compileJsonSchema({ ...SCHEMA, title: `replay ${r} ${Math.random()}` });
      for (const pass of [0, 1]) {
        let ms = 0, n = 0;
        for (const ids of outputs) {
          const c = new Constraint(fresh, tokenizer);
          const logits = new Float32Array(65536);
          for (const id of ids) {
            const t = performance.now();
            c.forced();
            c.mask(logits);
            c.accept(id);
            ms += performance.now() - t;
            n++;
          }
        }
        replay[pass].push(ms / n);
      }
    }
    const [cold, warm] = replay.map(best);
    console.log(
      `realistic outputs (${outputs.length} documents, ${
        outputs.reduce((a, o) => a + o.length, 0)
      } tokens, best of ${ROUNDS}): constraint per token ${cold.toFixed(3)} ms on the first ` +
        `pass (${(100 * cold / (f + s)).toFixed(1)} % of a token), ${warm.toFixed(3)} ms in ` +
        `steady state (${(100 * warm / (f + s)).toFixed(2)} %)`,
    );

    // 4. generate() A/B, alternating rounds.
    const ab = { plain: [] as number[], constrained: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const arm of ["plain", "constrained"] as const) {
        let ms = 0, tokens = 0;
        while (tokens < TOKENS) {
          const it = generate(model, tokenizer, prompt, {
            temperature: 0,
            maxTokens: TOKENS - tokens,
            jsonSchema: arm === "constrained" ? SCHEMA : undefined,
            stopOnEndOfText: false,
            state: base.clone(),
          });
          let res = await it.next();
          while (!res.done) res = await it.next();
          ms += res.value.generateSeconds * 1000;
          tokens += res.value.generatedTokens;
        }
        ab[arm].push(ms / tokens);
      }
    }
    const p = best(ab.plain), q = best(ab.constrained);
    console.log(
      `generate(), ms per generated token (best of ${ROUNDS}): unconstrained ${p.toFixed(2)}, ` +
        `constrained ${q.toFixed(2)} (${(100 * (q / p - 1)).toFixed(1)} %; forced runs are fed ` +
        `in one call)`,
    );
  } finally {
    await model.dispose();
  }
} finally {
  if (tmp) await Deno.remove(tmp, { recursive: true });
}
