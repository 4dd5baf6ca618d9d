/**
 * Generation on a real model (tiny-rwkv-7v0): batch generation equals each prompt alone, the
 * token rules (ban, stop, end of text), and batched perplexity equals one window at a time and
 * the log-likelihood computed token by token.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { generate, generateBatch, type GenerateStats } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { perplexity } from "../lib/perplexity.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import type { Model } from "../lib/model/model.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

async function withModel(fn: (m: Model) => Promise<void>): Promise<void> {
  const model = await loadModel(MODEL!, { threads: 2 });
  try {
    await fn(model);
  } finally {
    await model.dispose();
  }
}

async function alone(
  model: Model,
  prompt: string,
  options: Parameters<typeof generate>[3],
): Promise<{ text: string; tokens: number[]; stats: GenerateStats }> {
  const tok = await loadTokenizer("bytes");
  const tokens: number[] = [];
  const it = generate(model, tok, prompt, { ...options, onToken: (t) => tokens.push(t) });
  let text = "";
  let r = await it.next();
  while (!r.done) {
    text += r.value;
    r = await it.next();
  }
  return { text, tokens, stats: r.value };
}

Deno.test({
  name: "generateBatch: each sequence (own seed, sampler, stops) equals it generated alone",
  ignore: !MODEL,
  fn: () =>
    withModel(async (model) => {
      const tok = await loadTokenizer("bytes");
      const requests = [
        { prompt: "In a shocking finding, scientists", maxTokens: 40, seed: 11 },
        { prompt: "The", maxTokens: 25, seed: 12, temperature: 1.5, topP: 0.95 },
        { prompt: "Once upon a time, in a", maxTokens: 30, temperature: 0 },
        { prompt: "Hello", maxTokens: 60, seed: 13, stop: ["e "] },
        { prompt: "x", maxTokens: 0 },
      ];
      const pieces: string[] = requests.map(() => "");
      const batch = await generateBatch(model, tok, requests, {
        onPiece: (i, p) => pieces[i] += p,
      });
      for (let i = 0; i < requests.length; i++) {
        const { prompt, ...options } = requests[i];
        const one = await alone(model, prompt, options);
        assertEquals(batch[i].text, one.text, `request ${i} text`);
        assertEquals(batch[i].tokens, one.tokens, `request ${i} tokens`);
        assertEquals(batch[i].stats.stopReason, one.stats.stopReason, `request ${i} reason`);
        assertEquals(pieces[i], batch[i].text, `request ${i} streamed pieces`);
      }
      assertEquals(batch[3].stats.stopReason, "stop");
      assertEquals(batch[4].tokens, []);
      // different seeds gave different texts (the test would be empty otherwise)
      assert(batch[0].text !== batch[1].text);
    }),
});

Deno.test({
  name: "generate: banned tokens are never sampled, stop tokens end it, token 0 is an option",
  ignore: !MODEL,
  fn: () =>
    withModel(async (model) => {
      const greedy = await alone(model, "The quick", { maxTokens: 12, temperature: 0 });
      assertEquals(greedy.tokens.length, 12);
      const first = greedy.tokens[0];
      const banned = await alone(model, "The quick", {
        maxTokens: 12,
        temperature: 0,
        banTokens: [first],
      });
      assert(banned.tokens[0] !== first && !banned.tokens.includes(first), "ban holds");
      const stopped = await alone(model, "The quick", {
        maxTokens: 12,
        temperature: 0,
        stopTokens: [greedy.tokens[3]],
      });
      assertEquals(stopped.tokens, greedy.tokens.slice(0, greedy.tokens.indexOf(greedy.tokens[3])));
      assertEquals(stopped.stats.stopReason, "end-of-text");
      // byte-level: token 0 is the NUL byte, not the end of text, unless asked
      const forced = { logitBias: { 0: 1e4 }, temperature: 0, maxTokens: 3 };
      assertEquals((await alone(model, "A", forced)).tokens, [0, 0, 0]);
      const ended = await alone(model, "A", { ...forced, stopOnEndOfText: true });
      assertEquals([ended.tokens, ended.stats.stopReason], [[], "end-of-text"]);
    }),
});

Deno.test({
  name: "perplexity: windows evaluated in batches equal one at a time and token-by-token NLL",
  ignore: !MODEL,
  fn: () =>
    withModel(async (model) => {
      const tok = await loadTokenizer("bytes");
      const text = (await Deno.readTextFile(new URL("../bench/data/eval.txt", import.meta.url)))
        .slice(0, 700);
      const one = await perplexity(model, tok, text, { ctx: 64 });
      const three = await perplexity(model, tok, text, { ctx: 64, batch: 3 });
      assertEquals(three.scoredTokens, one.scoredTokens);
      assert(Math.abs(three.meanNll - one.meanNll) < 1e-6, `${three.meanNll} vs ${one.meanNll}`);
      // the first window's NLL by hand: one token per forward call from a fresh state
      const ids = tok.encode(text);
      const s = model.createState();
      let nll = 0;
      for (let t = 0; t < 64; t++) {
        const logits = await model.forward([ids[t]], s);
        const max = Math.max(...logits);
        const sum = logits.reduce((a, x) => a + Math.exp(x - max), 0);
        nll += Math.log(sum) + max - logits[ids[t + 1]];
      }
      const firstWindow = await perplexity(model, tok, text.slice(0, 65), { ctx: 64 });
      assertEquals(firstWindow.scoredTokens, 64);
      assert(
        Math.abs(firstWindow.meanNll - nll / 64) < 1e-5,
        `${firstWindow.meanNll} vs ${nll / 64}`,
      );
    }),
});
