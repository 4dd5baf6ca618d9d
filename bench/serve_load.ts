/**
 * Load test of the server: N concurrent streaming chat clients on loopback against
 * `cli/serve.ts` running the fixture model in a subprocess. Reports completed/failed,
 * latency (whole reply and first token) percentiles, and the server's RSS before and after.
 *
 *   deno run -A bench/serve_load.ts [--clients 50] [--max-tokens 32] [--concurrency 4]
 *                                  [--queue 64] [--backend auto] [--model FILE]
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "50" },
    "max-tokens": { type: "string", default: "32" },
    concurrency: { type: "string", default: "4" },
    queue: { type: "string", default: "64" },
    backend: { type: "string", default: "auto" },
    threads: { type: "string", default: "2" },
    model: { type: "string" },
  },
});

const fixtures = Deno.env.get("RWKV_FIXTURES") ??
  new URL("../../shared/fixtures", import.meta.url).pathname;
const model = v.model ?? `${fixtures}/tiny-rwkv-7v0.safetensors`;
const clients = Number(v.clients);

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN; // not Linux
  }
}

const mib = (n: number) => Number.isFinite(n) ? `${(n / 2 ** 20).toFixed(1)} MiB` : "n/a";

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

async function main(): Promise<void> {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli/serve.ts", import.meta.url).pathname,
      "--model",
      model,
      "--tokenizer",
      "bytes",
      "--port",
      "0",
      "--backend",
      v.backend!,
      "--threads",
      v.threads!,
      "--concurrency",
      v.concurrency!,
      "--queue",
      v.queue!,
      "--quiet",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // the first stdout line tells the URL
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("server exited before listening");
    first += value;
  }
  const url = /listening on (\S+?)\/? /.exec(first)?.[1];
  if (!url) throw new Error(`no URL in ${first}`);
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();

  // warm up once, then measure
  await (await fetch(`${url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ prompt: "Hi", max_tokens: 4 }),
  })).text();
  const rssBefore = rssOf(server.pid);

  const body = (i: number) =>
    JSON.stringify({
      messages: [{ role: "user", content: `Hello number ${i}, tell me a story.` }],
      max_tokens: Number(v["max-tokens"]),
      stream: true,
      seed: i,
    });
  const latencies: number[] = [];
  const firstTokens: number[] = [];
  let failed = 0;
  let tokens = 0;
  const errors = new Map<string, number>();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const start = performance.now();
    try {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(i),
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const r = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "", gotFirst = false, done = false;
      while (!done) {
        const { done: end, value } = await r.read();
        if (end) break;
        buf += value;
        let k;
        while ((k = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (ev === "data: [DONE]") {
            done = true;
            continue;
          }
          const c = JSON.parse(ev.slice(6));
          if (c.choices[0].delta?.content && !gotFirst) {
            gotFirst = true;
            firstTokens.push(performance.now() - start);
          }
          if (c.usage) tokens += c.usage.completion_tokens;
        }
      }
      if (!done) throw new Error("stream ended without [DONE]");
      latencies.push(performance.now() - start);
    } catch (e) {
      failed++;
      const k = (e as Error).message;
      errors.set(k, (errors.get(k) ?? 0) + 1);
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const rssAfter = rssOf(server.pid);
  server.kill("SIGTERM");
  await server.status;

  console.log(`load test: ${clients} concurrent streaming chat clients, ${model.split("/").pop()}`);
  console.log(
    `  server: concurrency ${v.concurrency}, queue ${v.queue}, backend ${v.backend}, ` +
      `threads ${v.threads}, max_tokens ${v["max-tokens"]}`,
  );
  console.log(
    `  completed ${latencies.length}, failed ${failed}` +
      (errors.size ? ` (${[...errors].map(([k, n]) => `${n}× ${k}`).join(", ")})` : ""),
  );
  console.log(
    `  latency   p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${
      percentile(latencies, 99).toFixed(0)
    } ms`,
  );
  console.log(
    `  first token p50 ${percentile(firstTokens, 50).toFixed(0)} ms, p99 ${
      percentile(firstTokens, 99).toFixed(0)
    } ms`,
  );
  console.log(
    `  ${tokens} tokens in ${wall.toFixed(2)} s = ${(tokens / wall).toFixed(0)} tok/s overall`,
  );
  console.log(`  server RSS before ${mib(rssBefore)}, after ${mib(rssAfter)}`);
}

if (import.meta.main) await main();
