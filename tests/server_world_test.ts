/**
 * The server's structured output, tools and log probabilities with the RWKV World vocabulary
 * (65,536 tokens, multi-byte tokens such as " <" and "\n\n", an end-of-text token): a random
 * one-layer RWKV-7 written by bench/make_model.ts. Checks what the byte-level fixture cannot: a
 * call tag that a token covers in part, a reply that may end on the end token, logprobs over the
 * whole vocabulary; and, on the scheduler, that a forced run is fed in one step without sampling
 * and yields the same tokens as one token per step.
 * @module
 */

import OpenAI from "openai";
import { compileJsonSchema, Constraint } from "../lib/grammar/mod.ts";
import { loadModel } from "../lib/load.ts";
import { Sampler } from "../lib/sample.ts";
import { startServer } from "../lib/server/mod.ts";
import { Scheduler } from "../lib/server/scheduler.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { makeModel } from "./_with.ts";

const VOCAB = fixture("tokenizers/rwkv_vocab_v20230424.txt");

const SCHEMA = {
  type: "object",
  properties: {
    city: { type: "string", enum: ["Paris", "Rome", "Oslo"] },
    days: { type: "integer", minimum: 1, maximum: 7 },
  },
  required: ["city", "days"],
  additionalProperties: false,
};

Deno.test({
  name: "server with the World vocabulary: tools, JSON, logprobs; forced runs in one step",
  ignore: !VOCAB,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { dir, cleanup } = await tempDir();
    const path = `${dir}/world-r7.safetensors`;
    await makeModel(path, ["--version", "7", "--layers", "1", "--embd", "64", "--vocab", "65536"]);
    const model = await loadModel(path, { engine: "reference", dtype: "f32" });
    const tokenizer = await loadTokenizer(VOCAB!);
    const server = startServer({ model, tokenizer, port: 0, modelName: "r7" });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    try {
      await t.step("chat: required and auto calls parse and match the schema", async () => {
        const tools: OpenAI.Chat.ChatCompletionTool[] = [
          { type: "function", function: { name: "forecast", parameters: SCHEMA } },
        ];
        // the tag's first token as the model would write it after "Assistant:"
        const lead = tokenizer.encode(" <tool_call>")[0];
        for (const auto of [false, true]) {
          const c = await client.chat.completions.create({
            model: "r7",
            messages: [{ role: "user", content: "Forecast for Oslo?" }],
            tools,
            tool_choice: auto ? "auto" : "required",
            parallel_tool_calls: false,
            temperature: 0.7,
            seed: 1,
            // room for the grammar's bounded whitespace (one space, or a newline and up to 20
            // spaces or tabs, between tokens): a random model writes a lot of it
            max_tokens: 400,
            ...(auto && { logit_bias: { [lead]: 50 } }),
          });
          const call = c.choices[0].message.tool_calls?.[0] as
            | OpenAI.Chat.ChatCompletionMessageFunctionToolCall
            | undefined;
          assert(call, `auto ${auto}: ${JSON.stringify(c.choices[0])}`);
          assertEquals(c.choices[0].finish_reason, "tool_calls");
          const args = JSON.parse(call.function.arguments);
          assert(["Paris", "Rome", "Oslo"].includes(args.city), call.function.arguments);
          assert(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7);
        }
      });

      await t.step("chat: auto with a response format on World tokens", async () => {
        const tools: OpenAI.Chat.ChatCompletionTool[] = [
          { type: "function", function: { name: "forecast", parameters: SCHEMA } },
        ];
        const tag = tokenizer.encode(" <tool_call>")[0]; // " <"
        const space = tokenizer.encode(" ")[0]; // the reply's lead before the format's JSON
        for (const [bias, calls] of [[tag, true], [space, false]] as const) {
          const c = await client.chat.completions.create({
            model: "r7",
            messages: [{ role: "user", content: "Forecast?" }],
            tools,
            parallel_tool_calls: false,
            temperature: 0.5,
            seed: 3,
            max_tokens: 400,
            logit_bias: { [bias]: 50 },
            response_format: {
              type: "json_schema",
              json_schema: { name: "f", schema: SCHEMA, strict: true },
            },
          });
          const choice = c.choices[0];
          if (calls) {
            assertEquals(choice.finish_reason, "tool_calls", JSON.stringify(choice));
            const call = choice.message
              .tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
            assert(Number.isInteger(JSON.parse(call.function.arguments).days));
          } else {
            assertEquals(choice.finish_reason, "stop", JSON.stringify(choice));
            assert(Number.isInteger(JSON.parse(choice.message.content!).days));
          }
        }
      });

      await t.step("chat: json_schema replies parse, sampled and greedy", async () => {
        for (const temperature of [0, 1]) {
          const c = await client.chat.completions.create({
            model: "r7",
            messages: [{ role: "user", content: "JSON please" }],
            temperature,
            seed: 4,
            max_tokens: 80,
            response_format: {
              type: "json_schema",
              json_schema: { name: "f", schema: SCHEMA, strict: true },
            },
          });
          assertEquals(c.choices[0].finish_reason, "stop");
          const v = JSON.parse(c.choices[0].message.content!);
          assert(["Paris", "Rome", "Oslo"].includes(v.city), c.choices[0].message.content!);
        }
      });

      await t.step("chat: logprobs over the whole vocabulary", async () => {
        const c = await client.chat.completions.create({
          model: "r7",
          messages: [{ role: "user", content: "Hello" }],
          temperature: 1,
          seed: 9,
          max_tokens: 6,
          logprobs: true,
          top_logprobs: 5,
        });
        const entries = c.choices[0].logprobs!.content!;
        assertEquals(entries.length, c.usage!.completion_tokens);
        for (const e of entries) {
          assert(e.logprob <= 0 && e.top_logprobs.length === 5);
          for (let i = 1; i < 5; i++) {
            assert(e.top_logprobs[i].logprob <= e.top_logprobs[i - 1].logprob, "sorted");
          }
          const inTop = e.top_logprobs.find((a) => a.token === e.token);
          if (inTop) assertEquals(inTop.logprob, e.logprob);
        }
      });

      await t.step("scheduler: a forced run is fed in one step, same tokens", async () => {
        // an enum of long strings: after the first distinguishing token the rest is forced
        const grammar = compileJsonSchema({
          type: "string",
          enum: ["the quick brown fox jumps over the lazy dog", "a"],
        });
        const prompt = tokenizer.encode("User: pick\n\nAssistant:");
        const run = async (logprobs: number | undefined) => {
          const scheduler = new Scheduler(model);
          const out: number[] = [];
          const before = scheduler.stats().steps;
          const seq = scheduler.submit({
            tokens: prompt,
            state: model.createState(),
            sampler: new Sampler({ temperature: 0 }),
            maxTokens: 64,
            endToken: 0,
            constraint: new Constraint(grammar, tokenizer, { endToken: 0 }),
            logprobs,
            onToken: (tok) => out.push(tok),
          });
          const r = await seq.done;
          const steps = scheduler.stats().steps - before;
          scheduler.close();
          return { out, steps, reason: r.reason };
        };
        const fast = await run(undefined);
        const slow = await run(0);
        assertEquals(fast.out, slow.out, "the same tokens either way");
        // the JSON grammars allow one space before the value (RWKV writes " {" after "Assistant:")
        const text = tokenizer.decode(fast.out).replace(/^ /, "");
        assert(
          ['"the quick brown fox jumps over the lazy dog"', '"a"'].includes(text),
          JSON.stringify(text),
        );
        assertEquals(fast.reason, "stop");
        // one token per step with logprobs; the forced run in one step without
        assert(fast.steps < slow.steps, `steps ${fast.steps} vs ${slow.steps}`);
      });
    } finally {
      await server.shutdown();
      await model.dispose();
      await cleanup();
    }
  },
});
