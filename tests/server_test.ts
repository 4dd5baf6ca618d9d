import { type Model, newModel } from "../lib/model/model.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import { withModel, withServer } from "./_with.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

/** A model whose every forward pass takes at least `ms` (so a generation stays busy). */
function slow(inner: Model, ms: number): Model {
  return newModel(
    {
      name: "slow",
      run: async (items, every) => {
        await new Promise((r) => setTimeout(r, ms));
        return inner.forwardBatch(items, { every });
      },
      dispose: () => Promise.resolve(),
    },
    inner.spec,
    inner.info,
  );
}

async function errorOf(res: Response, status: number): Promise<Record<string, unknown>> {
  const body = await res.json();
  assertEquals(res.status, status, JSON.stringify(body));
  assert(typeof body.error?.message === "string", "error.message");
  for (const k of ["type", "param", "code"]) assert(k in body.error, `error.${k}`);
  return body.error;
}

/** Reads an SSE body into its `data:` payloads. */
async function sseData(res: Response): Promise<string[]> {
  const text = await res.text();
  assert(text.endsWith("\n\n"), "events end with a blank line");
  const events = text.split("\n\n").filter((e) => e);
  for (const e of events) assert(e.startsWith("data: ") && !e.includes("\n"), `event ${e}`);
  return events.map((e) => e.slice(6));
}

Deno.test({
  name: "server: endpoints, streaming, errors, queue and cancellation",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withModel(MODEL!, { backend: "reference" }, async (model) => {
      const tokenizer = await loadTokenizer("bytes");
      await withServer({ model, tokenizer, modelName: "tiny" }, async (server) => {
        const url = server.url;
        assertEquals(server.addr.hostname, "127.0.0.1", "binds loopback by default");
        const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
          fetch(url + path, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: typeof body === "string" ? body : JSON.stringify(body),
          });
        await t.step("GET /health, /v1/models, / and 404", async () => {
          const h = await (await fetch(`${url}/health`)).json();
          assertEquals(h.status, "ok");
          assertEquals(h.batch, 0);
          assertEquals(h.queued, 0);
          const m = await (await fetch(`${url}/v1/models`)).json();
          assertEquals(m.object, "list");
          assertEquals(m.data[0].id, "tiny");
          const page = await fetch(`${url}/`);
          assert(page.headers.get("content-type")!.startsWith("text/html"));
          assert((await page.text()).includes("/v1/chat/completions"));
          await errorOf(await fetch(`${url}/v1/nope`), 404);
        });

        await t.step("POST /v1/completions (whole)", async () => {
          const res = await post("/v1/completions", {
            prompt: "In the",
            max_tokens: 5,
            temperature: 0,
          });
          const j = await res.json();
          assertEquals(res.status, 200, JSON.stringify(j));
          assertEquals(j.object, "text_completion");
          assertEquals(j.choices[0].finish_reason, "length");
          assertEquals(j.usage, { prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 });
          assert(typeof j.choices[0].text === "string" && j.choices[0].text.length > 0);
          // greedy and a fresh state per request: the same answer twice
          const again = await (await post("/v1/completions", {
            prompt: "In the",
            max_tokens: 5,
            temperature: 0,
          })).json();
          assertEquals(again.choices[0].text, j.choices[0].text);
        });

        await t.step("POST /v1/chat/completions stream: well-formed SSE chunks", async () => {
          const res = await post("/v1/chat/completions", {
            messages: [{ role: "system", content: "Hi" }, { role: "user", content: "Hello" }],
            max_tokens: 8,
            stream: true,
            seed: 1,
          });
          assertEquals(res.status, 200);
          assert(res.headers.get("content-type")!.startsWith("text/event-stream"));
          const data = await sseData(res);
          assertEquals(data.at(-1), "[DONE]");
          const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
          assertEquals(chunks[0].choices[0].delta.role, "assistant");
          const id = chunks[0].id;
          for (const c of chunks) {
            assertEquals(c.object, "chat.completion.chunk");
            assertEquals(c.id, id);
            assertEquals(c.model, "tiny");
            assertEquals(c.choices.length, 1);
          }
          const last = chunks.at(-1);
          assert(["stop", "length"].includes(last.choices[0].finish_reason));
          assertEquals(last.choices[0].delta, {});
          assert(!("usage" in last), "no usage without stream_options.include_usage");
          for (const c of chunks.slice(0, -1)) assertEquals(c.choices[0].finish_reason, null);
          // and the non-streamed form
          const whole = await (await post("/v1/chat/completions", {
            messages: [{ role: "user", content: "Hello" }],
            max_tokens: 4,
          })).json();
          assertEquals(whole.object, "chat.completion");
          assertEquals(whole.choices[0].message.role, "assistant");
        });

        await t.step("400 bad JSON and bad fields, 413 too large, 405", async () => {
          await errorOf(await post("/v1/completions", "{not json"), 400);
          const e = await errorOf(
            await post("/v1/completions", { prompt: "x", temperature: "hot" }),
            400,
          );
          assertEquals(e.param, "temperature");
          assertEquals((await errorOf(await post("/v1/completions", {}), 400)).param, "prompt");
          assertEquals(
            (await errorOf(
              await post("/v1/chat/completions", { messages: [{ role: "bot" }] }),
              400,
            ))
              .param,
            "messages[0].role",
          );
          assertEquals(
            (await errorOf(await post("/v1/completions", { prompt: "x", n: 2 }), 400)).param,
            "n",
          );
          const big = JSON.stringify({ prompt: "x".repeat(1024 * 1024 + 10) });
          await errorOf(await post("/v1/completions", big), 413);
          await errorOf(await fetch(`${url}/v1/completions`), 405);
        });
      });
    });
  },
});

Deno.test({
  name: "server: 401 without the API key, 429 when the queue is full, a disconnect frees the slot",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withModel(MODEL!, { backend: "reference" }, async (inner) => {
      const model = slow(inner, 15);
      const tokenizer = await loadTokenizer("bytes");
      await withServer({
        model,
        tokenizer,
        apiKey: "k3y",
        maxBatch: 1,
        queue: 1,
      }, async (server) => {
        const url = server.url;
        const auth = { authorization: "Bearer k3y", "content-type": "application/json" };
        const long = JSON.stringify({ prompt: "Hi", max_tokens: 2000, stream: true });
        const health = async () => await (await fetch(`${url}/health`)).json();
        await errorOf(await fetch(`${url}/v1/models`), 401);
        await errorOf(
          await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer no" } }),
          401,
        );
        assertEquals((await fetch(`${url}/v1/models`, { headers: auth })).status, 200);

        // request A runs, B waits in the queue of 1, C is refused
        const ctrlA = new AbortController();
        const a = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: auth,
          body: long,
          signal: ctrlA.signal,
        });
        assertEquals(a.status, 200);
        const readerA = a.body!.getReader();
        assert(!(await readerA.read()).done, "A streams");
        const ctrlB = new AbortController();
        const b = fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: auth,
          body: long,
          signal: ctrlB.signal,
        });
        for (let i = 0; i < 100 && (await health()).queued < 1; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assertEquals((await health()).queued, 1);
        const c = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: auth,
          body: long,
        });
        const err = await errorOf(c, 429);
        assertEquals(err.code, "queue_full");
        assertEquals(c.headers.get("retry-after"), "1");

        // B gives up while waiting: it leaves the queue
        ctrlB.abort();
        await b.catch(() => {});
        for (let i = 0; i < 100 && (await health()).queued > 0; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assertEquals((await health()).queued, 0);
        assertEquals((await health()).batch, 1);

        // A disconnects mid-stream: its generation is cancelled and the slot freed
        ctrlA.abort();
        await readerA.cancel().catch(() => {});
        let h = await health();
        for (let i = 0; i < 200 && h.batch > 0; i++) {
          await new Promise((r) => setTimeout(r, 10));
          h = await health();
        }
        assertEquals(h.batch, 0, "slot freed after the disconnect");
        const d = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ prompt: "Hi", max_tokens: 2 }),
        });
        assertEquals(d.status, 200);
        assertEquals((await d.json()).usage.completion_tokens, 2);
      });
    });
  },
});
