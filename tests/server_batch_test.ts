/**
 * Continuous batching: the scheduler's steps (chunked prefill within its budget, sequences
 * joining and leaving), 8 concurrent greedy requests equal to each run alone, and disconnects
 * (streaming and not) freeing their place within one step.
 * @module
 */

import { loadModel } from "../lib/load.ts";
import type { BatchItem, Model } from "../lib/model/model.ts";
import { Sampler } from "../lib/sample.ts";
import { Scheduler } from "../lib/server/scheduler.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { withModel, withServer } from "./_with.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

/** `model` with every forwardBatch call's item lengths recorded (and optionally slowed). */
function spy(model: Model, log: number[][], delayMs = 0): Model {
  const m = Object.create(model) as Model;
  m.forwardBatch = async (items: readonly BatchItem[], o?: { every?: boolean }) => {
    log.push(items.map((i) => i.tokens.length));
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return await model.forwardBatch(items, o);
  };
  return m;
}

const bytes = (s: string) => [...new TextEncoder().encode(s)];

Deno.test({
  name: "scheduler: chunked prefill within budget, joins and leaves, greedy equals alone",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const model = await loadModel(MODEL!, { backend: "reference" });
    try {
      // each prompt alone, greedy, 12 tokens
      const prompts = ["The quick brown fox", "In the beginning", "Hello", "Once upon a time, "];
      const alone: number[][] = [];
      for (const p of prompts) {
        const out: number[] = [];
        const s = new Scheduler(model, { maxBatch: 1 });
        const seq = s.submit({
          tokens: bytes(p),
          state: model.createState(),
          sampler: new Sampler({ temperature: 0 }),
          maxTokens: 12,
          onToken: (t) => out.push(t),
        });
        assertEquals((await seq.done).reason, "length");
        alone.push(out);
      }
      // all together, with a long prompt joining while they run and a small prefill budget
      const log: number[][] = [];
      const s = new Scheduler(spy(model, log), { maxBatch: 8, maxPrefillTokensPerStep: 7 });
      const outs = prompts.map(() => [] as number[]);
      const seqs = prompts.map((p, i) =>
        s.submit({
          tokens: bytes(p),
          state: model.createState(),
          sampler: new Sampler({ temperature: 0 }),
          maxTokens: 12,
          onToken: (t) => outs[i].push(t),
        })
      );
      // one that is cancelled after its third token, and a long one that joins later
      let cancelAt = -1;
      const cancelled: number[] = [];
      const victim = s.submit({
        tokens: bytes("Cancel me"),
        state: model.createState(),
        sampler: new Sampler({ temperature: 0 }),
        maxTokens: 50,
        onToken: (t) => {
          cancelled.push(t);
          if (cancelled.length === 3) {
            victim.cancel();
            cancelAt = log.length;
          }
        },
      });
      await new Promise((r) => setTimeout(r, 0));
      const longOut: number[] = [];
      const long = s.submit({
        tokens: bytes("A long prompt that must be read in several slices of the budget."),
        state: model.createState(),
        sampler: new Sampler({ temperature: 0 }),
        maxTokens: 3,
        onToken: (t) => longOut.push(t),
      });
      const results = await Promise.all(seqs.map((q) => q.done));
      for (let i = 0; i < prompts.length; i++) {
        assertEquals(results[i].reason, "length");
        assertEquals(outs[i], alone[i], `prompt ${i} batched equals alone`);
      }
      assertEquals((await victim.done).reason, "abort");
      assertEquals(cancelled.length, 3, "no token after the cancel");
      // the victim is in no step after the one in flight when it was cancelled
      const victimState = (await long.done).reason;
      assertEquals(victimState, "length");
      assertEquals(longOut.length, 3);
      // prefill budget: the prompt tokens of a step (items longer than one token, or a
      // sequence's first slice) never exceed 7; decode items are single tokens
      for (const step of log) {
        const prefill = step.filter((n) => n > 1).reduce((a, b) => a + b, 0);
        assert(prefill <= 7, `a step read ${prefill} prompt tokens (budget 7)`);
      }
      assert(log.some((st) => st.length >= 5), "sequences shared steps");
      assert(cancelAt > 0);
      const stats = s.stats();
      assertEquals(stats.running, 0);
      assertEquals(stats.finished.abort, 1);
    } finally {
      await model.dispose();
    }
  },
});

Deno.test({
  name: "server batching: 8 concurrent greedy requests each return what they return alone",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withModel(MODEL!, { backend: "reference" }, async (model) => {
      const tokenizer = await loadTokenizer("bytes");
      const log: number[][] = [];
      await withServer({
        model: spy(model, log, 5), // 5 ms a step, so all eight requests arrive while others run
        tokenizer,
        maxBatch: 8,
        maxPrefillTokensPerStep: 16,
      }, async (server) => {
        const ask = async (prompt: string, stream: boolean) => {
          const res = await fetch(`${server.url}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ prompt, max_tokens: 24, temperature: 0, stream }),
          });
          assertEquals(res.status, 200);
          if (!stream) return (await res.json()).choices[0].text as string;
          let text = "";
          for (const ev of (await res.text()).split("\n\n")) {
            if (!ev.startsWith("data: {")) continue;
            text += JSON.parse(ev.slice(6)).choices[0].text;
          }
          return text;
        };
        const prompts = Array.from(
          { length: 8 },
          (_, i) => `Story ${i}: the ${"ab".repeat(i)} cat`,
        );
        const alone: string[] = [];
        for (const p of prompts) alone.push(await ask(p, false));
        log.length = 0;
        const together = await Promise.all(prompts.map((p, i) => ask(p, i % 2 === 0)));
        assertEquals(together, alone);
        const widest = Math.max(...log.map((s) => s.length));
        assertEquals(widest, 8, "all eight decoded in one step");
      });
    });
  },
});

Deno.test({
  name: "server batching: a disconnect (streaming or not) frees the place within one step",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withModel(MODEL!, { backend: "reference" }, async (model) => {
      const tokenizer = await loadTokenizer("bytes");
      const log: number[][] = [];
      await withServer({ model: spy(model, log, 10), tokenizer, maxBatch: 2 }, async (server) => {
        const health = async () => await (await fetch(`${server.url}/health`)).json();
        const waitFor = async (f: (h: Record<string, number>) => boolean) => {
          // bounded: at most 500 polls
          for (let i = 0; i < 500; i++) {
            const h = await health();
            if (f(h)) return h;
            await new Promise((r) => setTimeout(r, 5));
          }
          throw new Error("condition never met");
        };
        for (const stream of [false, true]) {
          const ctrl = new AbortController();
          const req = fetch(`${server.url}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ prompt: "x".repeat(50), max_tokens: 4000, stream }),
            signal: ctrl.signal,
          });
          await waitFor((h) => h.batch === 1 && h.generatedTokens > 5);
          const before = (await health()).steps;
          ctrl.abort();
          await req.then((r) => r.body?.cancel()).catch(() => {});
          const after = await waitFor((h) => h.batch === 0);
          // the step in flight when the client left, plus at most one more started meanwhile
          assert(after.steps - before <= 2, `${after.steps - before} steps after the disconnect`);
          assert(after.finished.abort >= 1);
        }
      });
    });
  },
});
