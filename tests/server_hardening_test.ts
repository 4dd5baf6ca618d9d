/**
 * The server's hardening: prompt length limit, model names (`/v1/models/{id}`, 404 for unknown
 * names, aliases), CORS (nothing allowed by default, preflight answered), `Allow` on 405, the
 * usage chunk only when asked, a configurable chat template and stop strings, and no runtime
 * warnings from the CLI (run as a real process).
 * @module
 */

import { loadModel } from "../lib/load.ts";
import { startServer } from "../lib/server/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

async function errorOf(res: Response, status: number): Promise<Record<string, unknown>> {
  const body = await res.json();
  assertEquals(res.status, status, JSON.stringify(body));
  return body.error;
}

Deno.test({
  name: "server hardening: limits, model names, CORS, 405 Allow, usage chunk, template and stops",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const model = await loadModel(MODEL!, { backend: "reference" });
    const tokenizer = await loadTokenizer("bytes");
    const server = startServer({
      model,
      tokenizer,
      port: 0,
      modelName: "tiny",
      aliases: ["gpt-4o-mini"],
      maxPromptTokens: 40,
      cors: ["http://allowed.example"],
    });
    const url = server.url;
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    try {
      await t.step("--max-prompt-tokens: 400 prompt_too_long above it", async () => {
        const e = await errorOf(await post("/v1/completions", { prompt: "x".repeat(41) }), 400);
        assertEquals(e.code, "prompt_too_long");
        assertEquals(e.param, "prompt");
        const ok = await post("/v1/completions", { prompt: "x".repeat(40), max_tokens: 1 });
        assertEquals(ok.status, 200);
        await ok.body?.cancel();
      });

      await t.step("GET /v1/models/{id}; unknown names 404 model_not_found; aliases", async () => {
        const m = await (await fetch(`${url}/v1/models/tiny`)).json();
        assertEquals(m, { id: "tiny", object: "model", created: m.created, owned_by: "rwkv-deno" });
        assertEquals(
          (await (await fetch(`${url}/v1/models/gpt-4o-mini`)).json()).id,
          "gpt-4o-mini",
        );
        const e = await errorOf(await fetch(`${url}/v1/models/nope`), 404);
        assertEquals(e.code, "model_not_found");
        const list = await (await fetch(`${url}/v1/models`)).json();
        assertEquals(list.data.map((d: { id: string }) => d.id), ["tiny", "gpt-4o-mini"]);
        const bad = await post("/v1/chat/completions", {
          model: "llama",
          messages: [{ role: "user", content: "hi" }],
        });
        assertEquals((await errorOf(bad, 404)).code, "model_not_found");
        const alias = await post("/v1/completions", {
          model: "gpt-4o-mini",
          prompt: "hi",
          max_tokens: 1,
        });
        assertEquals(alias.status, 200);
        assertEquals((await alias.json()).model, "tiny");
      });

      await t.step("CORS: preflight answered, only --cors origins allowed", async () => {
        const pre = (origin: string) =>
          fetch(`${url}/v1/chat/completions`, {
            method: "OPTIONS",
            headers: {
              origin,
              "access-control-request-method": "POST",
              "access-control-request-headers": "authorization, content-type",
            },
          });
        const yes = await pre("http://allowed.example");
        assertEquals(yes.status, 204);
        assertEquals(yes.headers.get("access-control-allow-origin"), "http://allowed.example");
        assert(yes.headers.get("access-control-allow-methods")!.includes("POST"));
        assertEquals(
          yes.headers.get("access-control-allow-headers"),
          "authorization, content-type",
        );
        const no = await pre("http://evil.example");
        assertEquals(no.status, 204);
        assertEquals(no.headers.get("access-control-allow-origin"), null);
        const get = await fetch(`${url}/v1/models`, {
          headers: { origin: "http://allowed.example" },
        });
        assertEquals(get.headers.get("access-control-allow-origin"), "http://allowed.example");
        await get.body?.cancel();
      });

      await t.step("405 carries Allow", async () => {
        const r = await fetch(`${url}/v1/completions`);
        assertEquals((await errorOf(r, 405)).code, "method_not_allowed");
        assertEquals(r.headers.get("allow"), "POST");
        const r2 = await post("/v1/models", {});
        await errorOf(r2, 405);
        assertEquals(r2.headers.get("allow"), "GET");
      });

      await t.step("usage chunk only with stream_options.include_usage", async () => {
        const events = async (extra: Record<string, unknown>) => {
          const res = await post("/v1/chat/completions", {
            messages: [{ role: "user", content: "Hello" }],
            max_tokens: 3,
            temperature: 0,
            stream: true,
            ...extra,
          });
          return (await res.text()).split("\n\n").filter((e) => e.startsWith("data: {"))
            .map((e) => JSON.parse(e.slice(6)));
        };
        const plain = await events({});
        assert(plain.every((c) => !("usage" in c)), "no usage anywhere");
        const withUsage = await events({ stream_options: { include_usage: true } });
        const last = withUsage.at(-1);
        assertEquals(last.choices, []);
        assertEquals(last.usage.completion_tokens, 3);
        assertEquals(last.usage.prompt_tokens, "User: Hello\n\nAssistant:".length);
        assert(withUsage.slice(0, -1).every((c) => !("usage" in c)));
      });
    } finally {
      await server.shutdown();
    }

    await t.step("chat template and stop strings are server options", async () => {
      const run = async (stop?: string[]) => {
        const s = startServer({
          model,
          tokenizer,
          port: 0,
          template: {
            system: "S {content}\n",
            user: "Q: {content}\n",
            assistant: "A: {content}\n",
            generation: "A:",
          },
          stop,
        });
        try {
          const res = await fetch(`${s.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              messages: [{ role: "user", content: "hi" }],
              max_tokens: 30,
              temperature: 0,
            }),
          });
          return await res.json();
        } finally {
          await s.shutdown();
        }
      };
      const free = await run([]);
      assertEquals(free.usage.prompt_tokens, "Q: hi\nA:".length, "the template was used");
      const text: string = free.choices[0].message.content;
      assertEquals(free.choices[0].finish_reason, "length");
      // stop at the third character the model writes (no earlier occurrence of it)
      const ch = [...text].find((c, i) => i >= 2 && text.indexOf(c) === i && c.trim());
      assert(ch, `a stop character in ${JSON.stringify(text)}`);
      const cut = await run([ch]);
      assertEquals(cut.choices[0].message.content, text.slice(0, text.indexOf(ch)));
      assertEquals(cut.choices[0].finish_reason, "stop");
    });
    await model.dispose();
  },
});

Deno.test({
  name: "server CLI: no runtime warnings in the log; bad flags exit 2",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cli = new URL("../cli/serve.ts", import.meta.url).pathname;
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "--model", MODEL!, "--max-batch", "zero"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(bad.code, 2);
    const err = new TextDecoder().decode(bad.stderr);
    assert(err.includes("--max-batch") && !err.includes("    at "), err);

    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        cli,
        "--model",
        MODEL!,
        "--tokenizer",
        "bytes",
        "--backend",
        "reference",
        "--port",
        "0",
        "--quiet",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const errText = new Response(child.stderr).text();
    let line = "";
    while (!line.includes("\n")) {
      const r = await out.read();
      if (r.done) break;
      line += r.value;
    }
    const url = /listening on (http:\/\/\S+?)\//.exec(line)?.[1];
    try {
      assert(url, `server printed its address: ${line}`);
      for (const stream of [false, true]) {
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            messages: [{ role: "user", content: "Hi" }],
            max_tokens: 4,
            stream,
          }),
        });
        assertEquals(res.status, 200);
        await res.text();
      }
      const ctrl = new AbortController();
      const gone = fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Hi", max_tokens: 500 }),
        signal: ctrl.signal,
      }).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
      ctrl.abort();
      await gone;
      // and a streaming client that leaves after its first chunk
      const streaming = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          messages: [{ role: "user", content: "Hi" }],
          max_tokens: 500,
          stream: true,
        }),
      });
      const reader = streaming.body!.getReader();
      await reader.read();
      await reader.cancel();
      for (let i = 0; i < 400; i++) {
        const h = await (await fetch(`${url}/health`)).json();
        if (h.batch === 0) break;
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await out.cancel();
    }
    const log = await errText;
    assertEquals(log.trim(), "", "nothing on stderr");
  },
});
