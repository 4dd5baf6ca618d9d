/**
 * Replicas behind a stock load balancer: three `cli/serve.ts` processes sharing a real Redis,
 * behind HAProxy with `deploy/haproxy.cfg` (round robin, no stickiness), all on loopback ports
 * and stopped here. A five-turn `previous_response_id` conversation goes through the balancer;
 * the replica that served turn 3 is killed before turn 4, Redis is restarted before turn 5 (the
 * turn meanwhile gets a clear 503, then the service recovers by itself), and the greedy output
 * of every turn equals a single server's.
 * @module
 */

import { loadModel } from "../lib/load.ts";
import { startServer } from "../lib/server/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { binary, freePort, startHaproxy, startRedis, startServe } from "../testing/services.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const REDIS = binary("redis-server");
const HAPROXY = binary("haproxy");

const QUESTIONS = [
  "Tell me about the sea.",
  "Why is it blue?",
  "And at night?",
  "What lives there?",
  "Thank you.",
];

interface Turn {
  id: string;
  text: string;
  processed: number;
  server: string | null;
}

async function turn(url: string, input: string, prev?: string): Promise<Response> {
  return await fetch(`${url}/v1/responses`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny",
      input,
      previous_response_id: prev,
      max_output_tokens: 12,
      temperature: 0,
    }),
  });
}

async function parse(res: Response): Promise<Turn> {
  const j = await res.json();
  assertEquals(res.status, 200, JSON.stringify(j));
  return {
    id: j.id,
    text: j.output[0].content[0].text,
    processed: j.usage.input_tokens - j.usage.input_tokens_details.cached_tokens,
    server: res.headers.get("x-rwkv-server"),
  };
}

Deno.test({
  name: "replicas: 3 servers + Redis behind HAProxy; kill one, restart Redis; same as one server",
  ignore: !MODEL || !REDIS || !HAPROXY,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // the single-server run
    const model = await loadModel(MODEL!, { backend: "reference" });
    const tokenizer = await loadTokenizer("bytes");
    const single = startServer({ model, tokenizer, port: 0, modelName: "tiny" });
    const expected: Turn[] = [];
    try {
      for (const q of QUESTIONS) {
        expected.push(await parse(await turn(single.url, q, expected.at(-1)?.id)));
      }
    } finally {
      await single.shutdown();
      await model.dispose();
    }

    const { dir, cleanup } = await tempDir();
    const redis = await startRedis(REDIS!, dir);
    const ports = [freePort(), freePort(), freePort()];
    const replicas: Awaited<ReturnType<typeof startServe>>[] = [];
    let lb: Awaited<ReturnType<typeof startHaproxy>> | undefined;
    try {
      for (const [i, port] of ports.entries()) {
        replicas.push(
          await startServe([
            "--model",
            MODEL!,
            "--tokenizer",
            "bytes",
            "--backend",
            "reference",
            "--name",
            "tiny",
            "--port",
            String(port),
            "--state-store",
            redis.url,
            "--server-id",
            `replica${i + 1}`,
            "--quiet",
          ]),
        );
      }
      lb = await startHaproxy(HAPROXY!, ports.map((p) => `127.0.0.1:${p}`));
      const got: Turn[] = [];
      for (let i = 0; i < 3; i++) {
        got.push(await parse(await turn(lb.url, QUESTIONS[i], got.at(-1)?.id)));
      }
      assert(new Set(got.map((t) => t.server)).size >= 2, "round robin spread the turns");

      // kill (SIGKILL) the replica that served turn 3; turn 4 goes to a live one
      const victim = Number(got[2].server!.replace("replica", "")) - 1;
      replicas[victim].child.kill("SIGKILL");
      await replicas[victim].child.status;
      got.push(await parse(await turn(lb.url, QUESTIONS[3], got[2].id)));
      assert(got[3].server !== got[2].server, "served by another replica");

      // Redis restarts: a turn meanwhile gets a clear 503, then the service recovers by itself
      await redis.stop();
      const during = await turn(lb.url, QUESTIONS[4], got[3].id);
      const err = await during.json();
      assertEquals(during.status, 503, JSON.stringify(err));
      assertEquals(err.error.code, "state_store_unavailable");
      assertEquals(during.headers.get("retry-after"), "1");
      await redis.start();
      let last: Response | undefined;
      for (let i = 0; i < 200; i++) {
        last = await turn(lb.url, QUESTIONS[4], got[3].id);
        if (last.status !== 503) break;
        await last.body?.cancel();
        await new Promise((r) => setTimeout(r, 25));
      }
      got.push(await parse(last!));

      assert(expected.every((t) => t.text.length > 0), "the model said something each turn");
      assertEquals(got.map((t) => t.text), expected.map((t) => t.text), "same greedy output");
      assertEquals(got.map((t) => t.processed), expected.map((t) => t.processed));
    } finally {
      await lb?.stop();
      for (const r of replicas) await r.stop();
      await redis.stop();
      await cleanup();
    }
  },
});
