/**
 * Load run of the replicated deployment: a real Redis, N `cli/serve.ts` replicas sharing it and
 * HAProxy with `deploy/haproxy.cfg` in front (all on loopback, all stopped at the end), then C
 * concurrent conversations of T turns each through the balancer with `previous_response_id`.
 * Reports failed requests, lost states (a follow-up whose previous response was not found),
 * latency p50/p99 per turn, states stored and Redis memory.
 *
 *   deno run -A bench/serve_replicas.ts [--conversations 50] [--turns 3] [--max-tokens 16]
 *     [--model FILE] [--tokenizer bytes|FILE] [--backend auto] [--dtype auto] [--threads 1]
 *
 * Needs `redis-server` and `haproxy` (Debian packages). Default model: the tiny fixture.
 * @module
 */

import { parseArgs } from "node:util";
import { RedisStore } from "../lib/server/store_redis.ts";
import { binary, freePort, startHaproxy, startRedis, startServe } from "../testing/services.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    conversations: { type: "string", default: "50" },
    turns: { type: "string", default: "3" },
    replicas: { type: "string", default: "3" },
    "max-tokens": { type: "string", default: "16" },
    model: { type: "string" },
    tokenizer: { type: "string", default: "bytes" },
    backend: { type: "string", default: "auto" },
    dtype: { type: "string", default: "auto" },
    threads: { type: "string", default: "1" },
  },
});
const fixtures = Deno.env.get("RWKV_FIXTURES") ??
  new URL("../../shared/fixtures", import.meta.url).pathname;
const model = v.model ?? `${fixtures}/tiny-rwkv-7v0.safetensors`;
const C = Number(v.conversations), T = Number(v.turns), R = Number(v.replicas);
if (![C, T, R].every((n) => Number.isInteger(n) && n >= 1)) {
  console.error("error: --conversations, --turns and --replicas must be whole numbers ≥ 1");
  Deno.exit(2);
}
const redisBin = binary("redis-server"), haproxyBin = binary("haproxy");
if (!redisBin || !haproxyBin) Deno.exit(2);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const redis = await startRedis(redisBin);
const ports = Array.from({ length: R }, () => freePort());
const replicas: Awaited<ReturnType<typeof startServe>>[] = [];
let lb: Awaited<ReturnType<typeof startHaproxy>> | undefined;
try {
  for (const [i, port] of ports.entries()) {
    replicas.push(
      await startServe([
        "--model",
        model,
        "--tokenizer",
        v.tokenizer!,
        "--backend",
        v.backend!,
        "--dtype",
        v.dtype!,
        "--threads",
        v.threads!,
        "--port",
        String(port),
        "--state-store",
        redis.url,
        "--server-id",
        `replica${i + 1}`,
        "--max-batch",
        "16",
        "--queue",
        "256",
        "--quiet",
      ]),
    );
  }
  lb = await startHaproxy(haproxyBin, ports.map((p) => `127.0.0.1:${p}`));
  const latencies: number[][] = Array.from({ length: T }, () => []);
  let failed = 0, lost = 0;
  const served = new Map<string, number>();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async (_, c) => {
    let prev: string | undefined;
    for (let t = 0; t < T; t++) {
      const s = performance.now();
      const res = await fetch(`${lb!.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          input: `Conversation ${c}, turn ${t}: tell me more.`,
          previous_response_id: prev,
          max_output_tokens: Number(v["max-tokens"]),
          temperature: 0,
        }),
      }).catch(() => undefined);
      const j = res ? await res.json().catch(() => ({})) : {};
      if (!res || res.status !== 200) {
        failed++;
        if (j?.error?.code === "previous_response_not_found") lost++;
        return;
      }
      latencies[t].push(performance.now() - s);
      const by = res.headers.get("x-rwkv-server") ?? "?";
      served.set(by, (served.get(by) ?? 0) + 1);
      prev = j.id;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const store = await RedisStore.connect(redis.url);
  const info = await store.info();
  await store.close();
  console.log(
    `${C} conversations × ${T} turns over ${R} replicas behind HAProxy in ${seconds.toFixed(1)} s`,
  );
  console.log(`failed ${failed}, lost states ${lost}`);
  for (let t = 0; t < T; t++) {
    const l = latencies[t];
    console.log(
      `turn ${t + 1}: ${l.length} ok, latency p50 ${pct(l, 50).toFixed(0)} ms, ` +
        `p99 ${pct(l, 99).toFixed(0)} ms`,
    );
  }
  console.log(`served by: ${[...served].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  console.log(
    `Redis: ${info.keys} keys (a state and a response per turn), ` +
      `used memory ${(Number(info.usedMemoryBytes) / 2 ** 20).toFixed(1)} MiB`,
  );
  if (failed) Deno.exitCode = 1;
} finally {
  await lb?.stop();
  for (const r of replicas) await r.stop();
  await redis.stop();
}
