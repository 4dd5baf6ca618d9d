/**
 * The Responses API driven by the official `openai` npm client (v5): `responses.create`,
 * `responses.stream`, a multi-turn `previous_response_id` conversation (the second turn
 * processes only its own tokens and its logits equal the whole transcript run at once),
 * retrieve/delete, `store: false`, a state from another model refused; and the chat-completions
 * prefix cache (a conversation resending its history processes only the new turn, with the same
 * greedy replies as without the cache).
 * @module
 */

import OpenAI from "openai";
import { loadModel } from "../lib/load.ts";
import { decodeState, MemoryStore, modelIdentity, startServer } from "../lib/server/mod.ts";
import { encodeChat, type TemplateMessage, WORLD_TEMPLATE } from "../lib/server/template.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals, maxAbsDiff } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { withModel, withServer } from "./_with.ts";

type ChatMsg = TemplateMessage;
const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const OTHER = fixture("tiny-rwkv-7v0-bf16.pth"); // same shape, other file: another identity

Deno.test({
  name: "responses: the openai client drives create, stream and previous_response_id",
  ignore: !MODEL || !OTHER,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withModel(MODEL!, { backend: "reference", dtype: "f32" }, async (model) => {
      const tokenizer = await loadTokenizer("bytes");
      const store = new MemoryStore();
      await withServer({ model, tokenizer, modelName: "tiny", store }, async (server) => {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
        const identity = await modelIdentity(model);
        const turnTokens = (text: string) =>
          encodeChat(tokenizer, WORLD_TEMPLATE, [{ role: "user", content: text }]).tokens;
        const storedState = async (id: string) =>
          decodeState(model, identity, (await store.get(`resp-state:${id}`))!);
        let first: OpenAI.Responses.Response;
        await t.step("responses.create, then a second turn with previous_response_id", async () => {
          first = await client.responses.create({
            model: "tiny",
            input: "Tell me a story",
            max_output_tokens: 12,
            temperature: 0,
          });
          assert(first.id.startsWith("resp_"));
          assert(first.output_text.length > 0, "output_text");
          assertEquals(first.usage!.input_tokens, turnTokens("Tell me a story").length);
          assertEquals(first.usage!.input_tokens_details.cached_tokens, 0);

          const second = await client.responses.create({
            model: "tiny",
            input: "And then?",
            previous_response_id: first.id,
            max_output_tokens: 12,
            temperature: 0,
          });
          const u = second.usage!;
          const processed = u.input_tokens - u.input_tokens_details.cached_tokens;
          assertEquals(processed, turnTokens("And then?").length, "only the new turn processed");
          const s1 = await storedState(first.id);
          assertEquals(u.input_tokens_details.cached_tokens, s1.meta.tokens);
          assertEquals(second.previous_response_id, first.id);

          // the second turn's logits from the stored state equal the whole transcript at once
          const out1 = s1.meta.output_tokens as number[];
          const t1 = turnTokens("Tell me a story");
          const t2 = turnTokens("And then?");
          assertEquals(s1.meta.tokens, t1.length + out1.length);
          const resumed = await model.forward(t2, s1.state.clone());
          const whole = model.createState();
          const once = await model.forward([...t1, ...out1, ...t2], whole);
          const d = maxAbsDiff(resumed, once);
          assert(d <= 1e-4, `logits differ by ${d}`);
          // and the state the server kept after turn 2 equals the transcript's from scratch
          const s2 = await storedState(second.id);
          const out2 = s2.meta.output_tokens as number[];
          await model.forward(out2, whole);
          const ds = maxAbsDiff(s2.state.data, whole.data);
          assert(ds <= 1e-4, `states differ by ${ds}`);
        });

        await t.step("responses.stream: the Responses event sequence", async () => {
          const types: string[] = [];
          let deltas = "";
          let usage: OpenAI.Responses.ResponseUsage | undefined | null;
          const stream = client.responses.stream({
            model: "tiny",
            input: [{ role: "user", content: "Hello there" }],
            instructions: "Be brief.",
            max_output_tokens: 10,
            temperature: 0,
          });
          for await (const ev of stream) {
            types.push(ev.type);
            if (ev.type === "response.output_text.delta") deltas += ev.delta;
            // the SDK (5.23) keeps only response.completed's snapshot, not response.incomplete's
            if (ev.type === "response.completed" || ev.type === "response.incomplete") {
              usage = ev.response.usage;
            }
          }
          const final = await stream.finalResponse();
          const part = final.output[0].type === "message" ? final.output[0].content[0] : undefined;
          assertEquals(part?.type === "output_text" ? part.text : undefined, deltas);
          assertEquals(types.slice(0, 4), [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
          ]);
          assertEquals(types.slice(-4, -1), [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
          ]);
          assert(["response.completed", "response.incomplete"].includes(types.at(-1)!));
          assertEquals(
            usage!.input_tokens,
            encodeChat(tokenizer, WORLD_TEMPLATE, [
              { role: "system", content: "Be brief." },
              { role: "user", content: "Hello there" },
            ]).tokens.length,
          );
        });

        await t.step("retrieve, delete, store: false", async () => {
          const got = await client.responses.retrieve(first.id);
          assertEquals(got.output_text, first.output_text);
          await client.responses.delete(first.id);
          let status = 0;
          await client.responses.retrieve(first.id).catch((e) => status = e.status);
          assertEquals(status, 404);
          await client.responses.create({
            model: "tiny",
            input: "x",
            previous_response_id: first.id,
          }).catch((e) => status = e.status * 10);
          assertEquals(status, 4040, "a deleted response cannot be continued");
          const unstored = await client.responses.create({
            model: "tiny",
            input: "x",
            store: false,
            max_output_tokens: 2,
          });
          await client.responses.retrieve(unstored.id).catch((e) => status = e.status + 1);
          assertEquals(status, 405);
        });

        await t.step("a state stored by another model is refused (409)", async () => {
          const mine = await client.responses.create({
            model: "tiny",
            input: "Hi",
            max_output_tokens: 3,
          });
          const other = await loadModel(OTHER!, { backend: "reference", dtype: "f32" });
          const s2 = startServer({ model: other, tokenizer, port: 0, modelName: "tiny", store });
          try {
            const res = await fetch(`${s2.url}/v1/responses`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ input: "more", previous_response_id: mine.id }),
            });
            const body = await res.json();
            assertEquals(res.status, 409);
            assertEquals(body.error.code, "state_model_mismatch");
          } finally {
            await s2.api.scheduler.close();
            await s2.shutdown().catch(() => {});
            await other.dispose();
          }
        });
      });
    });
  },
});

Deno.test({
  name: "chat prefix cache: resending the history processes only the new turn, same replies",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const model = await loadModel(MODEL!, { backend: "reference" });
    const tokenizer = await loadTokenizer("bytes");
    const cachedServer = startServer({ model, tokenizer, port: 0 });
    const plainServer = startServer({ model, tokenizer, port: 0, prefixCache: false });
    const ascii: Record<string, number> = {};
    for (let b = 0; b < 256; b++) if (b > 126 || (b < 32 && b !== 10)) ascii[b] = -100;
    const ask = async (url: string, messages: unknown[]) => {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        // printable ASCII only: a byte-level model's invalid UTF-8 would come back as U+FFFD,
        // not the bytes it generated (an honest cache miss, but not what this test is about)
        // (and no penalties: greedy replies then start with the space after "Assistant:", as a
        // resent history writes them)
        body: JSON.stringify({
          messages,
          max_tokens: 16,
          temperature: 0,
          presence_penalty: 0,
          frequency_penalty: 0,
          logit_bias: ascii,
        }),
      });
      const j = await res.json();
      assertEquals(res.status, 200, JSON.stringify(j));
      return j;
    };
    try {
      const history: { role: string; content: string }[] = [
        { role: "system", content: "You are a tiny model." },
      ];
      let fullHits = 0;
      for (let turn = 0; turn < 10; turn++) {
        history.push({ role: "user", content: `Question number ${turn}?` });
        const a = await ask(cachedServer.url, history);
        const b = await ask(plainServer.url, history);
        assertEquals(a.choices[0].message.content, b.choices[0].message.content, `turn ${turn}`);
        assertEquals(b.usage.prompt_tokens_details.cached_tokens, 0);
        const cached = a.usage.prompt_tokens_details.cached_tokens;
        const newTurn = `User: Question number ${turn}?\n\nAssistant:`.length;
        if (turn > 0) {
          // either every token but the new turn came from the cache, or all up to the end of
          // the previous question (when the reply was not written back token for token as
          // generated, e.g. it ended at max_tokens)
          const all = a.usage.prompt_tokens - newTurn;
          const upToQuestion = encodeChat(
            tokenizer,
            WORLD_TEMPLATE,
            history.slice(0, -2) as ChatMsg[],
            false,
          ).tokens.length;
          assert(
            cached === all || cached === upToQuestion,
            `turn ${turn}: cached ${cached}, prompt ${a.usage.prompt_tokens}`,
          );
          if (cached === all) fullHits++;
        } else assertEquals(cached, 0);
        history.push({ role: "assistant", content: a.choices[0].message.content });
      }
      console.log(`prefix cache: ${fullHits} of 9 follow-ups processed only the new turn`);
      assertEquals(fullHits, 9, "every follow-up resumed after the previous reply");
    } finally {
      await cachedServer.shutdown();
      await plainServer.shutdown();
      await model.dispose();
    }
  },
});
