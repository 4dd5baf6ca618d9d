/**
 * Structured output and log probabilities through the server, on the tiny RWKV-7 fixture (byte
 * vocabulary):
 * - the official `openai` client's `chat.completions.parse` with `zodResponseFormat` and
 *   `responses.parse` with `zodTextFormat` return parsed objects (streamed too), JSON mode gives
 *   a JSON object, `/v1/completions` takes llama.cpp's `grammar` and `json_schema`;
 * - `logprobs` (chat, completions, Responses `include`) equal a float64 log-softmax of the
 *   logits this test computes itself by running the same model over the same tokens, within
 *   1e-4; `top_logprobs` are sorted and hold the sampled token when it is among the most likely;
 * - bad input (a schema or grammar the compiler refuses, an unknown tool in `tool_choice`,
 *   malformed tool messages, too many `top_logprobs`) is a 400 in OpenAI's error shape naming
 *   the field, and leaves nothing running.
 * @module
 */

import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import type { Model } from "../lib/model/model.ts";
import { encodeChat, WORLD_TEMPLATE } from "../lib/server/template.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { tinyServer } from "./_tiny_server.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

/** A float64 log-softmax of float32 logits. */
function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

interface Entry {
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { logprob: number; bytes: number[] | null }[];
}

/**
 * Checks reported entries against the model run here over `prompt` then the reported tokens
 * (byte vocabulary: a token is its byte); returns the largest difference.
 */
async function checkLogprobs(
  model: Model,
  prompt: number[],
  entries: readonly Entry[],
  top: number,
): Promise<number> {
  const state = model.createState();
  let logits = await model.forward(prompt, state);
  let worst = 0;
  for (const e of entries) {
    const token = e.bytes![0];
    const ref = logSoftmax(logits);
    worst = Math.max(worst, Math.abs(ref[token] - e.logprob));
    assertEquals(e.top_logprobs.length, top);
    for (let i = 0; i < e.top_logprobs.length; i++) {
      const alt = e.top_logprobs[i];
      worst = Math.max(worst, Math.abs(ref[alt.bytes![0]] - alt.logprob));
      if (i > 0) assert(alt.logprob <= e.top_logprobs[i - 1].logprob, "sorted");
    }
    // the sampled token is in the list when it is at least as likely as the list's last
    const last = e.top_logprobs.at(-1);
    if (last && e.logprob > last.logprob) {
      assert(e.top_logprobs.some((a) => a.bytes![0] === token), "sampled token listed");
    }
    logits = await model.forward([token], state);
  }
  return worst;
}

Deno.test({
  name: "structured output and logprobs through the openai client",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const tiny = await tinyServer(MODEL!);
    const { model, tokenizer, server, client } = tiny;
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const Weather = z.object({
      city: z.enum(["Paris", "Rome"]),
      sunny: z.boolean(),
      level: z.enum(["low", "high"]).nullable(),
    });
    const chatPrompt = (text: string) =>
      encodeChat(tokenizer, WORLD_TEMPLATE, [{ role: "user", content: text }]).tokens;
    try {
      await t.step("responses.parse with zodTextFormat returns the parsed object", async () => {
        for (const temperature of [0, 1]) {
          const r = await client.responses.parse({
            model: "tiny",
            input: "Weather report, please",
            temperature,
            max_output_tokens: 200,
            text: { format: zodTextFormat(Weather, "weather") },
          });
          assertEquals(r.status, "completed");
          const parsed = r.output_parsed!;
          assert(["Paris", "Rome"].includes(parsed.city), JSON.stringify(parsed));
          assertEquals(typeof parsed.sunny, "boolean");
          assertEquals(r.text?.format?.type, "json_schema");
        }
        const stream = client.responses.stream({
          model: "tiny",
          input: "Weather report, please",
          temperature: 0.7,
          max_output_tokens: 200,
          text: { format: zodTextFormat(Weather, "weather") },
        });
        let deltas = "";
        for await (const ev of stream) {
          if (ev.type === "response.output_text.delta") deltas += ev.delta;
        }
        const final = await stream.finalResponse();
        assertEquals(deltas, final.output_text);
        assert(["Paris", "Rome"].includes(final.output_parsed!.city), final.output_text);
      });

      await t.step(
        "responses: include output_text logprobs equal a float64 log-softmax",
        async () => {
          const input = "Tell me a story";
          for (const temperature of [0, 1.2]) {
            const r = await client.responses.create({
              model: "tiny",
              input,
              temperature,
              seed: 3,
              max_output_tokens: 12,
              include: ["message.output_text.logprobs"],
              top_logprobs: 5,
              // this client's types predate the include value and top_logprobs (the API has both)
            } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming);
            const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as {
              logprobs: Entry[];
            };
            assertEquals(part.logprobs.length, r.usage!.output_tokens);
            const d = await checkLogprobs(model, chatPrompt(input), part.logprobs, 5);
            assert(d <= 1e-4, `logprobs differ by ${d}`);
          }
          // streamed: each output_text.delta carries its tokens' entries
          const res = await fetch(`${server.url}/v1/responses`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              input,
              stream: true,
              temperature: 1,
              seed: 8,
              max_output_tokens: 10,
              include: ["message.output_text.logprobs"],
              top_logprobs: 2,
            }),
          });
          const streamed: Entry[] = [];
          for (const line of (await res.text()).split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const ev = JSON.parse(line.slice(6));
            if (ev.type === "response.output_text.delta") streamed.push(...ev.logprobs);
          }
          assert(streamed.length > 0);
          const d = await checkLogprobs(model, chatPrompt(input), streamed, 2);
          assert(d <= 1e-4, `streamed logprobs differ by ${d}`);
        },
      );

      await t.step("chat.completions.parse with zodResponseFormat (and streamed)", async () => {
        for (const temperature of [0, 1]) {
          const c = await client.chat.completions.parse({
            model: "tiny",
            messages: [{ role: "user", content: "Weather report, please" }],
            temperature,
            max_tokens: 200,
            response_format: zodResponseFormat(Weather, "weather"),
          });
          assertEquals(c.choices[0].finish_reason, "stop");
          const parsed = c.choices[0].message.parsed!;
          assert(["Paris", "Rome"].includes(parsed.city), JSON.stringify(parsed));
          assertEquals(typeof parsed.sunny, "boolean");
        }
        const runner = client.chat.completions.stream({
          model: "tiny",
          messages: [{ role: "user", content: "Weather report, please" }],
          temperature: 0.8,
          max_tokens: 200,
          response_format: zodResponseFormat(Weather, "weather"),
        });
        const done = await runner.finalChatCompletion();
        assert(["Paris", "Rome"].includes(done.choices[0].message.parsed!.city));
      });

      await t.step("cut by the token limit: finish_reason length, status incomplete", async () => {
        const c = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: "Weather report, please" }],
          max_tokens: 4,
          response_format: zodResponseFormat(Weather, "weather"),
        });
        assertEquals(c.choices[0].finish_reason, "length");
        assert(c.choices[0].message.content!.trimStart().startsWith("{"));
        const r = await client.responses.create({
          model: "tiny",
          input: "Weather report, please",
          max_output_tokens: 4,
          text: { format: zodTextFormat(Weather, "weather") },
        });
        assertEquals(r.status, "incomplete");
        assertEquals(r.incomplete_details?.reason, "max_output_tokens");
      });

      await t.step("JSON mode, and llama.cpp's grammar / json_schema on completions", async () => {
        const c = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: "Some JSON" }],
          temperature: 0,
          max_tokens: 120,
          response_format: { type: "json_object" },
        });
        if (c.choices[0].finish_reason === "stop") {
          const v = JSON.parse(c.choices[0].message.content!);
          assert(typeof v === "object" && v !== null && !Array.isArray(v));
        } else assert(c.choices[0].message.content!.startsWith("{"));
        const g = await post("/v1/completions", {
          prompt: "The answer is",
          grammar: 'root ::= " " ("yes" | "no") "."',
          max_tokens: 10,
          temperature: 1,
          seed: 5,
        });
        assertEquals(g.status, 200, JSON.stringify(g.body));
        assert([" yes.", " no."].includes(g.body.choices[0].text), g.body.choices[0].text);
        assertEquals(g.body.choices[0].finish_reason, "stop");
        const j = await post("/v1/completions", {
          prompt: "n = ",
          json_schema: { type: "integer", minimum: 10, maximum: 99 },
          max_tokens: 10,
          temperature: 0,
        });
        const n = JSON.parse(j.body.choices[0].text);
        assert(Number.isInteger(n) && n >= 10 && n <= 99, j.body.choices[0].text);
      });

      await t.step("chat and completions logprobs equal a float64 log-softmax", async () => {
        const text = "Tell me a story";
        for (const temperature of [0, 1.3]) {
          const c = await client.chat.completions.create({
            model: "tiny",
            messages: [{ role: "user", content: text }],
            temperature,
            seed: 11,
            max_tokens: 10,
            logprobs: true,
            top_logprobs: 20,
          });
          const entries = c.choices[0].logprobs!.content! as Entry[];
          assertEquals(entries.length, c.usage!.completion_tokens);
          const d = await checkLogprobs(model, chatPrompt(text), entries, 20);
          assert(d <= 1e-4, `chat logprobs differ by ${d}`);
        }
        // streamed: each chunk carries its tokens' entries
        const stream = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: text }],
          temperature: 0.9,
          seed: 2,
          max_tokens: 10,
          logprobs: true,
          top_logprobs: 3,
          stream: true,
        });
        const streamed: Entry[] = [];
        let content = "";
        for await (const chunk of stream) {
          const ch = chunk.choices[0];
          streamed.push(...((ch?.logprobs?.content ?? []) as Entry[]));
          content += ch?.delta?.content ?? "";
        }
        assert(streamed.length > 0 && content.length > 0);
        const d = await checkLogprobs(model, chatPrompt(text), streamed, 3);
        assert(d <= 1e-4, `streamed logprobs differ by ${d}`);
        // completions: the legacy shape (tokens, token_logprobs, top_logprobs maps)
        const prompt = "Once upon a time";
        const r = await post("/v1/completions", {
          prompt,
          max_tokens: 8,
          temperature: 0,
          logprobs: 4,
        });
        const lp = r.body.choices[0].logprobs;
        assertEquals(lp.tokens.join(""), r.body.choices[0].text);
        const asEntries: Entry[] = lp.tokens.map((tok: string, i: number) => ({
          logprob: lp.token_logprobs[i],
          bytes: [...new TextEncoder().encode(tok)],
          top_logprobs: Object.entries(lp.top_logprobs[i] as Record<string, number>).map((
            [k, v],
          ) => ({ logprob: v, bytes: [...new TextEncoder().encode(k)] })),
        }));
        const dc = await checkLogprobs(model, [...new TextEncoder().encode(prompt)], asEntries, 4);
        assert(dc <= 1e-4, `completions logprobs differ by ${dc}`);
      });

      await t.step("400 naming the field, nothing left running", async () => {
        const cases: [string, Record<string, unknown>, string][] = [
          ["/v1/responses", {
            input: "x",
            text: {
              format: {
                type: "json_schema",
                name: "x",
                schema: { type: "object", patternProperties: { a: {} } },
              },
            },
          }, "text.format.schema"],
          [
            "/v1/responses",
            { input: "x", text: { format: { type: "json_schema" } } },
            "text.format.name",
          ],
          ["/v1/responses", {
            input: "x",
            tools: [{ type: "function", name: "f", parameters: { type: "object" } }],
            tool_choice: { type: "function", name: "g" },
          }, "tool_choice"],
          ["/v1/responses", {
            input: "x",
            tools: [{ type: "function", name: "f", parameters: { type: "strange" } }],
          }, "tools[0].parameters"],
          ["/v1/responses", {
            input: [{ type: "function_call_output", output: "x" }],
          }, "input[0].call_id"],
          ["/v1/responses", {
            input: [{ type: "function_call", call_id: "c", arguments: "{}" }],
          }, "input[0].name"],
          ["/v1/responses", {
            input: "x",
            include: ["message.output_text.logprobs"],
            top_logprobs: 21,
          }, "top_logprobs"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            response_format: {
              type: "json_schema",
              json_schema: { name: "x", schema: { type: "array", uniqueItems: true } },
            },
          }, "response_format.json_schema.schema"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            response_format: { type: "xml" },
          }, "response_format.type"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            tools: [{ type: "function", function: { name: "f" } }],
            tool_choice: { type: "function", function: { name: "nope" } },
          }, "tool_choice"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            tools: [{ type: "function", function: { name: "bad name!" } }],
          }, "tools[0].function.name"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            tools: [{ type: "function", function: { name: "f", parameters: { not: {} } } }],
          }, "tools[0].function.parameters"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }, { role: "tool", content: "42" }],
          }, "messages[1].tool_call_id"],
          ["/v1/chat/completions", {
            messages: [{
              role: "assistant",
              content: null,
              tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: {} } }],
            }],
          }, "messages[0].tool_calls[0].function.arguments"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            logprobs: true,
            top_logprobs: 21,
          }, "top_logprobs"],
          ["/v1/chat/completions", {
            messages: [{ role: "user", content: "x" }],
            top_logprobs: 2,
          }, "top_logprobs"],
          ["/v1/completions", { prompt: "x", grammar: "root ::= [a-" }, "grammar"],
          ["/v1/completions", {
            prompt: "x",
            json_schema: { type: "object", properties: { a: { $ref: "#/$defs/missing" } } },
          }, "json_schema"],
          ["/v1/completions", { prompt: "x", grammar: 'root ::= "a"', json_schema: {} }, "grammar"],
        ];
        for (const [path, body, param] of cases) {
          const r = await post(path, body);
          assertEquals(r.status, 400, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
          assertEquals(r.body.error.param, param, JSON.stringify(r.body));
          assertEquals(r.body.error.type, "invalid_request_error");
          assert(typeof r.body.error.message === "string" && r.body.error.message.length > 0);
        }
        const health = await (await fetch(`${server.url}/health`)).json();
        assertEquals(health.features.logprobs.maxTopLogprobs, 20);
        assert(health.features.responseFormat.includes("json_schema"));
        const s = server.api.scheduler.stats();
        assertEquals(s.running + s.queued, 0, "nothing held after the errors");
      });
    } finally {
      await tiny.close();
    }
  },
});
