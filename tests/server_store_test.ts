/**
 * The state store: the in-process store (LRU by bytes, TTL, spill to a directory), the Redis
 * store against a real `redis-server` started and stopped here (binary values, TTL, a clear
 * error while Redis is down and recovery after), model identity (another model's state is
 * refused), and explicit named states over HTTP.
 * @module
 */

import { loadModel } from "../lib/load.ts";
import {
  decodeState,
  encodeState,
  MemoryStore,
  modelIdentity,
  StateMismatchError,
  StoreUnavailableError,
  weightsHash,
} from "../lib/server/mod.ts";
import { RedisStore } from "../lib/server/store_redis.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { withModel, withServer } from "./_with.ts";
import { binary, startRedis } from "../testing/services.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const OTHER = fixture("tiny-rwkv-7v0-bf16.pth");
const REDIS = binary("redis-server");

const bytesOf = (n: number, v: number) => new Uint8Array(n).fill(v);

Deno.test("memory store: LRU by bytes, TTL, spill to a directory and back", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const plain = new MemoryStore({ maxBytes: 250 });
    await plain.set("a", bytesOf(100, 1));
    await plain.set("b", bytesOf(100, 2));
    await plain.get("a"); // a is now the most recently used
    await plain.set("c", bytesOf(100, 3)); // over 250: b goes
    assertEquals(await plain.get("b"), undefined);
    assertEquals((await plain.get("a"))![0], 1);
    assertEquals((await plain.get("c"))![0], 3);
    assertEquals((await plain.info()).bytes, 200);
    await plain.set("t", bytesOf(10, 9), 0.02);
    await new Promise((r) => setTimeout(r, 60));
    assertEquals(await plain.get("t"), undefined, "expired");
    assert(await plain.delete("a"));
    assert(!(await plain.delete("a")));

    const spill = new MemoryStore({ maxBytes: 250, spillDir: dir });
    await spill.set("x", bytesOf(100, 7));
    await spill.set("y", bytesOf(100, 8));
    await spill.set("z", bytesOf(100, 9)); // x spilled to disk
    assertEquals([...Deno.readDirSync(dir)].length, 1);
    assertEquals(await spill.get("x"), bytesOf(100, 7), "read back from the spill directory");
    assert(await spill.delete("y"));
    await spill.close();
  } finally {
    await cleanup();
  }
});

Deno.test({
  name: "model identity: shape, dtype and a weights hash; another model's state is refused",
  ignore: !MODEL || !OTHER,
  fn: async () => {
    assertEquals(await weightsHash(MODEL!), await weightsHash(MODEL!));
    assert(await weightsHash(MODEL!) !== await weightsHash(OTHER!));
    const a = await loadModel(MODEL!, { backend: "reference", dtype: "f32" });
    const q = await loadModel(MODEL!, { backend: "reference", dtype: "q8" });
    try {
      const idA = await modelIdentity(a);
      const idQ = await modelIdentity(q);
      assert(idA.startsWith("rwkv7 L6 C64 H1x64 V256 f32 w:"), idA);
      assert(idA !== idQ, "q8 and f32 are different models for states");
      const s = a.createState();
      await a.forward([1, 2, 3], s);
      const env = encodeState(idA, s, { tokens: 3 });
      const back = decodeState(a, idA, env);
      assertEquals(back.meta.tokens, 3);
      assertEquals(back.state.data, s.data);
      let refused: unknown;
      try {
        decodeState(q, idQ, env);
      } catch (e) {
        refused = e;
      }
      assert(refused instanceof StateMismatchError, "refused by the q8 model");
      // a bare State file is accepted only where allowed (explicit uploads)
      assertEquals(decodeState(a, idA, s.toBytes(), true).state.data, s.data);
    } finally {
      await a.dispose();
      await q.dispose();
    }
  },
});

Deno.test({
  name: "redis store: a real redis-server; binary values, TTL, 503-style error while down",
  ignore: !REDIS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const redis = await startRedis(REDIS!);
    let store: RedisStore | undefined;
    try {
      store = await RedisStore.connect(redis.url);
      const value = new Uint8Array(300_000).map((_, i) => (i * 7) & 255); // every byte value
      await store.set("k", value);
      assertEquals(await store.get("k"), value);
      assertEquals(await store.get("missing"), undefined);
      await store.set("ttl", bytesOf(3, 1), 0.05);
      await new Promise((r) => setTimeout(r, 120));
      assertEquals(await store.get("ttl"), undefined, "expired in Redis");
      assert(await store.delete("k"));
      assert(!(await store.delete("k")));
      const info = await store.info();
      assertEquals(info.status, "ok");

      await redis.stop();
      let down: unknown;
      try {
        await store.get("k");
      } catch (e) {
        down = e;
      }
      assert(down instanceof StoreUnavailableError, `a clear error while down: ${down}`);
      assertEquals((await store.info()).status, "unavailable");
      await redis.start();
      // the client reconnects by itself (bounded wait)
      let back = false;
      for (let i = 0; i < 200 && !back; i++) {
        back = await store.set("again", bytesOf(1, 1)).then(() => true, () => false);
        if (!back) await new Promise((r) => setTimeout(r, 25));
      }
      assert(back, "recovered after the restart");
    } finally {
      await store?.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name: "explicit states: PUT/GET/DELETE /v1/states/{name} with auth; requests start from one",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withModel(MODEL!, { backend: "reference" }, async (model) => {
      const tokenizer = await loadTokenizer("bytes");
      const boot = model.createState();
      await model.forward(tokenizer.encode("Long ago"), boot);
      await withServer({
        model,
        tokenizer,
        apiKey: "k",
        namedStates: new Map([["boot", boot]]),
      }, async (server) => {
        const auth = { authorization: "Bearer k" };
        const complete = async (prompt: string, state?: string) => {
          const res = await fetch(`${server.url}/v1/completions`, {
            method: "POST",
            headers: { ...auth, "content-type": "application/json" },
            body: JSON.stringify({ prompt, max_tokens: 10, temperature: 0, state }),
          });
          const j = await res.json();
          assertEquals(res.status, 200, JSON.stringify(j));
          return j.choices[0].text as string;
        };
        const s = model.createState();
        await model.forward(tokenizer.encode("Once upon"), s);
        const url = `${server.url}/v1/states/story`;
        assertEquals(
          (await fetch(url, { method: "PUT", body: new Uint8Array(s.toBytes()) })).status,
          401,
        );
        const put = await fetch(url, {
          method: "PUT",
          headers: auth,
          body: new Uint8Array(s.toBytes()),
        });
        assertEquals(put.status, 200, await put.clone().text());
        assertEquals((await put.json()).id, "story");
        // continuing from the stored state equals the whole prompt from scratch
        assertEquals(await complete(" a time", "story"), await complete("Once upon a time"));
        // the start-up state too
        assertEquals(await complete(", there", "boot"), await complete("Long ago, there"));
        const got = await fetch(url, { headers: auth });
        assertEquals(got.status, 200);
        const env = new Uint8Array(await got.arrayBuffer());
        const identity = got.headers.get("x-rwkv-model")!;
        assertEquals(decodeState(model, identity, env).state.data, s.data);
        const garbage = await fetch(`${server.url}/v1/states/bad`, {
          method: "PUT",
          headers: auth,
          body: new Uint8Array([1, 2, 3]),
        });
        assertEquals(garbage.status, 409);
        await garbage.body?.cancel();
        assertEquals((await fetch(url, { method: "DELETE", headers: auth })).status, 200);
        const gone = await fetch(url, { headers: auth });
        assertEquals(gone.status, 404);
        await gone.body?.cancel();
        const missing = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ prompt: "x", state: "story" }),
        });
        assertEquals((await missing.json()).error.code, "state_not_found");
      });
    });
  },
});
