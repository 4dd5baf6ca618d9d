/**
 * Tool calling through the official `openai` npm client, on the tiny RWKV-7 fixture (byte
 * vocabulary): the model calls a function (its arguments held to the parameter schema by the
 * grammar), the result goes back, the model answers; through chat completions and the
 * Responses API, streaming and not, with `tool_choice` `required`, a named function and
 * `auto` (where a logit bias on `<` makes the tiny model choose to call). Every call's
 * arguments must parse and match the schema; streamed fragments must add up to the final call.
 * @module
 */

import OpenAI from "openai";
import { encodeChat, WORLD_TEMPLATE } from "../lib/server/template.ts";
import { CallScanner } from "../lib/server/_tool_reply.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { tinyServer } from "./_tiny_server.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

const CITIES = ["Paris", "Rome", "Oslo"];
const WEATHER_PARAMS = {
  type: "object",
  properties: {
    city: { type: "string", enum: CITIES },
    unit: { type: "string", enum: ["c", "f"] },
  },
  required: ["city", "unit"],
  additionalProperties: false,
};
const TIME_PARAMS = {
  type: "object",
  properties: { zone: { type: "string", enum: ["utc", "cet"] } },
  required: ["zone"],
  additionalProperties: false,
};

/** The arguments of a weather call, checked against its schema by hand. */
function checkWeather(args: string): void {
  const a = JSON.parse(args);
  assertEquals(Object.keys(a).sort(), ["city", "unit"], `arguments ${args}`);
  assert(CITIES.includes(a.city), `city ${a.city}`);
  assert(a.unit === "c" || a.unit === "f", `unit ${a.unit}`);
}

Deno.test("tools: the call scanner streams names and argument fragments", () => {
  const s = new CallScanner("<tool_call>");
  const text = ' <tool_call>[{"name": "f", "arguments": {"a": "x,}\\"}", "b": [1, {"c": 2}]}},\n' +
    '{"arguments": {"z": true}, "name": "g"}]';
  const events = [];
  for (const ch of text) events.push(...s.push(ch)); // one character at a time
  const calls = s.calls;
  assertEquals(calls.map((c) => c.name), ["f", "g"]);
  assertEquals(calls[0].arguments, '{"a": "x,}\\"}", "b": [1, {"c": 2}]}');
  assertEquals(JSON.parse(calls[0].arguments).a, 'x,}"}');
  assertEquals(calls[1].arguments, '{"z": true}');
  for (const [i, c] of calls.entries()) {
    const frags = events.filter((e) => e.kind === "args" && e.index === i)
      .map((e) => (e as { text: string }).text).join("");
    assertEquals(frags, c.arguments);
    assert(events.some((e) => e.kind === "start" && e.index === i && e.name === c.name));
  }
});

Deno.test({
  name: "tools: a call, its result, the answer (openai client; responses and chat)",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const tiny = await tinyServer(MODEL!);
    const { client } = tiny;
    const rTools: OpenAI.Responses.FunctionTool[] = [
      { type: "function", name: "get_weather", parameters: WEATHER_PARAMS, strict: true },
      { type: "function", name: "get_time", parameters: TIME_PARAMS, strict: true },
    ];
    const common = { model: "tiny", temperature: 0, max_output_tokens: 160 } as const;
    try {
      await t.step("responses: required call, result back, answer (not streamed)", async () => {
        const r1 = await client.responses.create({
          ...common,
          input: "What is the weather in Paris?",
          tools: rTools,
          tool_choice: { type: "function", name: "get_weather" },
          parallel_tool_calls: false,
        });
        assertEquals(r1.status, "completed");
        const calls = r1.output.filter((o) => o.type === "function_call");
        assertEquals(calls.length, 1);
        const call = calls[0] as OpenAI.Responses.ResponseFunctionToolCall;
        assertEquals(call.name, "get_weather");
        assert(call.call_id.startsWith("call_"));
        checkWeather(call.arguments);
        // the result goes back with the conversation's stored state; the model answers
        const r2 = await client.responses.create({
          ...common,
          max_output_tokens: 8,
          previous_response_id: r1.id,
          input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21" }],
          tools: rTools,
          tool_choice: "none",
        });
        assert(r2.output_text.length > 0, "an answer");
        assert(r2.output.every((o) => o.type === "message"));
        // only the result turn was read: the stored state had seen the functions
        const resultTurn = encodeChat(tiny.tokenizer, WORLD_TEMPLATE, [
          { role: "tool", content: "sunny, 21" },
        ]).tokens.length;
        const processed = (u: OpenAI.Responses.ResponseUsage) =>
          u.input_tokens - u.input_tokens_details.cached_tokens;
        assertEquals(processed(r2.usage!), resultTurn);
        // other functions in a follow-up are shown again (their turn is read too)
        const r2b = await client.responses.create({
          ...common,
          max_output_tokens: 4,
          previous_response_id: r1.id,
          input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21" }],
          tools: [rTools[1]],
        });
        assert(processed(r2b.usage!) > resultTurn + 20, JSON.stringify(r2b.usage));
        // the same conversation resent whole (no stored state) is read the same way
        const r3 = await client.responses.create({
          ...common,
          max_output_tokens: 8,
          store: false,
          input: [
            { role: "user", content: "What is the weather in Paris?" },
            {
              type: "function_call",
              call_id: call.call_id,
              name: call.name,
              arguments: call.arguments,
            },
            { type: "function_call_output", call_id: call.call_id, output: "sunny, 21" },
          ],
          tools: rTools,
          tool_choice: "none",
        });
        assert(r3.output_text.length > 0);
      });

      await t.step("responses: streamed call events add up to the final call", async () => {
        const stream = client.responses.stream({
          ...common,
          input: "Weather in Rome, please",
          tools: rTools,
          tool_choice: "required",
          parallel_tool_calls: false,
        });
        const types: string[] = [];
        let args = "";
        for await (const ev of stream) {
          types.push(ev.type);
          if (ev.type === "response.function_call_arguments.delta") args += ev.delta;
        }
        const final = await stream.finalResponse();
        const call = final.output.find((o) => o.type === "function_call") as
          | OpenAI.Responses.ResponseFunctionToolCall
          | undefined;
        assert(call, "a function_call item");
        assertEquals(args, call.arguments);
        if (call.name === "get_weather") checkWeather(call.arguments);
        else assert(["utc", "cet"].includes(JSON.parse(call.arguments).zone));
        const order = [
          "response.created",
          "response.output_item.added",
          "response.function_call_arguments.delta",
          "response.function_call_arguments.done",
          "response.output_item.done",
          "response.completed",
        ].map((x) => types.indexOf(x));
        assert(order.every((x, i) => x >= 0 && (i === 0 || x > order[i - 1])), types.join());
        assert(!types.includes("response.output_text.delta"), "no text when calling");
      });

      await t.step("responses: auto, biased to call, then a plain answer", async () => {
        const r = await client.responses.create({
          ...common,
          input: "Weather in Oslo?",
          tools: rTools,
          parallel_tool_calls: false,
          // "<" opens the call tag: the model chooses to call (a nudge the tiny model needs)
          // deno-lint-ignore no-explicit-any
          ...({ logit_bias: { "60": 30 } } as any),
        });
        const call = r.output.find((o) => o.type === "function_call") as
          | OpenAI.Responses.ResponseFunctionToolCall
          | undefined;
        assert(call, JSON.stringify(r.output));
        const plain = await client.responses.create({
          ...common,
          max_output_tokens: 6,
          input: "Hello",
          tools: rTools,
        });
        assert(plain.output.every((o) => o.type === "message"), "auto without bias: text");
      });

      const cTools: OpenAI.Chat.ChatCompletionTool[] = [
        { type: "function", function: { name: "get_weather", parameters: WEATHER_PARAMS } },
        { type: "function", function: { name: "get_time", parameters: TIME_PARAMS } },
      ];
      const chatCommon = { model: "tiny", temperature: 0, max_tokens: 160 } as const;

      await t.step("chat: named call, result back as a tool message, answer", async () => {
        const question = { role: "user", content: "What is the weather in Oslo?" } as const;
        const c1 = await client.chat.completions.create({
          ...chatCommon,
          messages: [question],
          tools: cTools,
          tool_choice: { type: "function", function: { name: "get_weather" } },
          parallel_tool_calls: false,
        });
        const choice = c1.choices[0];
        assertEquals(choice.finish_reason, "tool_calls");
        assertEquals(choice.message.content, null);
        const calls = choice.message.tool_calls!;
        assertEquals(calls.length, 1);
        const call = calls[0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
        assertEquals(call.function.name, "get_weather");
        checkWeather(call.function.arguments);
        const c2 = await client.chat.completions.create({
          ...chatCommon,
          max_tokens: 8,
          messages: [
            question,
            choice.message,
            { role: "tool", tool_call_id: call.id, content: "snow, -3" },
          ],
          tools: cTools,
        });
        assertEquals(c2.choices[0].finish_reason === "tool_calls", false);
        assert((c2.choices[0].message.content ?? "").length > 0, "an answer");
      });

      await t.step("chat: streamed delta.tool_calls fragments add up (required)", async () => {
        const stream = await client.chat.completions.create({
          ...chatCommon,
          stream: true,
          messages: [{ role: "user", content: "Time and weather in Rome?" }],
          tools: cTools,
          tool_choice: "required",
          parallel_tool_calls: false,
        });
        let name = "", args = "", id = "", finish = "";
        for await (const chunk of stream) {
          const c = chunk.choices[0];
          if (!c) continue;
          for (const tc of c.delta.tool_calls ?? []) {
            assertEquals(tc.index, 0);
            if (tc.id) id = tc.id;
            name += tc.function?.name ?? "";
            args += tc.function?.arguments ?? "";
          }
          assert(!c.delta.content, "no content while calling");
          if (c.finish_reason) finish = c.finish_reason;
        }
        assertEquals(finish, "tool_calls");
        assert(id.startsWith("call_"));
        if (name === "get_weather") checkWeather(args);
        else assert(["utc", "cet"].includes(JSON.parse(args).zone), `${name} ${args}`);
      });

      await t.step(
        "chat: auto with a response format: a call, or content in the format",
        async () => {
          const format = {
            type: "json_schema",
            json_schema: {
              name: "answer",
              strict: true,
              schema: {
                type: "object",
                properties: { ok: { type: "boolean" } },
                required: ["ok"],
                additionalProperties: false,
              },
            },
          } as const;
          const ask = (bias: Record<string, number>) =>
            client.chat.completions.create({
              ...chatCommon,
              messages: [{ role: "user", content: "Weather in Rome?" }],
              tools: cTools,
              parallel_tool_calls: false,
              response_format: format,
              logit_bias: bias,
            });
          // "<" (60) starts the call tag, "{" (123) the format's object: the bias picks the branch
          const called = await ask({ "60": 30 });
          assertEquals(called.choices[0].finish_reason, "tool_calls");
          const call = called.choices[0].message
            .tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
          assert(call.function.name === "get_weather" || call.function.name === "get_time");
          JSON.parse(call.function.arguments);
          const answered = await ask({ "123": 30 });
          assertEquals(answered.choices[0].finish_reason, "stop");
          assertEquals(typeof JSON.parse(answered.choices[0].message.content!).ok, "boolean");
        },
      );

      await t.step("chat: the client's streaming helper assembles the call (auto)", async () => {
        const runner = client.chat.completions.stream({
          ...chatCommon,
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools: cTools,
          parallel_tool_calls: false,
          logit_bias: { "60": 30 }, // "<" opens the call tag: the tiny model needs the nudge
        });
        const done = await runner.finalChatCompletion();
        const call = done.choices[0].message.tool_calls?.[0] as
          | OpenAI.Chat.ChatCompletionMessageFunctionToolCall
          | undefined;
        assert(call, JSON.stringify(done.choices[0]));
        if (call.function.name === "get_weather") checkWeather(call.function.arguments);
        assertEquals(done.choices[0].finish_reason, "tool_calls");
      });
    } finally {
      await tiny.close();
    }
  },
});
