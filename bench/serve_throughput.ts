/**
 * Serving throughput: starts `cli/serve.ts` on a model in a subprocess and, for each N in
 * `--streams` (default 1, 2, 4, 8, 16), runs N concurrent streaming clients, each with its own
 * prompt of 16–64 tokens and `max_tokens` 64, all in one run. Per N it prints the aggregate
 * generated tokens/s (all tokens over the wall time from the first request to the last reply),
 * its ratio to N = 1, time to first token p50/p99, inter-token latency p50/p99 (gaps between a
 * stream's successive text chunks) and the server's peak RSS while those N ran.
 *
 *   deno run -A bench/serve_throughput.ts --model /tmp/models/7-0.1b.safetensors --dtype q8 \
 *     [--threads 2] [--streams 1,2,4,8,16] [--max-tokens 64] [--max-batch 16]
 *     [--max-prefill-tokens-per-step 256] [--tokenizer FILE|bytes] [--json FILE]
 *
 * `--join-prompt TOKENS` then reruns the largest N with a prompt of that many tokens joining
 * once every stream has its first token, and prints the streams' inter-token p99 with and
 * without it (chunked prefill bounds the difference by one step's prefill budget).
 *
 * `--abandon` then sends a non-streaming request, abandons it once it is generating, and prints
 * how long its place in the batch stayed taken.
 *
 * `--json FILE` also writes `{ model, dtype, engine, rows: [{ streams, aggregateTokPerSec,
 * ratio, ttftP50Ms, ttftP99Ms, itlP50Ms, itlP99Ms, peakRssMiB }] }` (atomically).
 * @module
 */

import { parseArgs } from "node:util";
import { writeAll, writeAtomic } from "../lib/formats/file.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";
import type { ThroughputRow } from "../testing/chart.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "q8" },
    threads: { type: "string", default: "2" },
    backend: { type: "string", default: "auto" },
    tokenizer: { type: "string" },
    streams: { type: "string", default: "1,2,4,8,16" },
    "max-tokens": { type: "string", default: "64" },
    "max-batch": { type: "string" },
    "max-prefill-tokens-per-step": { type: "string", default: "256" },
    json: { type: "string" },
    "join-prompt": { type: "string" },
    abandon: { type: "boolean", default: false },
    // random-weight models give nearly flat logits, so nucleus sampling keeps (and sorts) most of
    // the vocabulary every token, which a trained model's peaked distribution does not: 0 (greedy)
    // measures the engine and the scheduler rather than that sort
    temperature: { type: "string", default: "1" },
    "top-p": { type: "string", default: "0.9" },
  },
});

function fail(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(2);
}

if (!v.model) fail("--model is required");
const streams = v.streams!.split(",").map(Number);
if (streams.some((n) => !Number.isInteger(n) || n < 1)) {
  fail(`--streams must be whole numbers ≥ 1, not ${v.streams}`);
}
const maxTokens = Number(v["max-tokens"]);
if (!Number.isInteger(maxTokens) || maxTokens < 1) fail("--max-tokens must be a whole number ≥ 1");
const maxBatch = v["max-batch"] ?? String(Math.max(...streams));

/** Percentile `p` (0–100) of `xs` (nearest rank). */
function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN; // not Linux
  }
}

// Prompts: sentences of common words, cut to 16–64 tokens of this model's tokenizer.
const vocabGuess = v.tokenizer ?? await findTokenizerFor(v.model!, 65536) ??
  new URL("../../shared/fixtures/tokenizers/rwkv_vocab_v20230424.txt", import.meta.url).pathname;
const tokenizer = await loadTokenizer(vocabGuess);
const WORDS = ("the a river mountain quiet city light morning old friend walked across bridge " +
  "under stars while music played softly and children laughed near water garden story").split(" ");
function prompt(i: number): string {
  const want = 16 + ((i * 37) % 49); // 16..64 tokens
  let text = `Story ${i}:`;
  let x = i * 7919 + 1;
  while (tokenizer.encode(text).length < want) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    text += " " + WORDS[x % WORDS.length];
  }
  return text;
}

const cli = new URL("../cli/serve.ts", import.meta.url).pathname;
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    cli,
    "--model",
    v.model!,
    "--tokenizer",
    vocabGuess,
    "--dtype",
    v.dtype!,
    "--threads",
    v.threads!,
    "--backend",
    v.backend!,
    "--port",
    "0",
    "--max-batch",
    maxBatch,
    "--max-prefill-tokens-per-step",
    v["max-prefill-tokens-per-step"]!,
    "--queue",
    "256",
    "--quiet",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let head = "";
while (!/listening on /.test(head)) {
  const r = await lines.read();
  if (r.done) fail(`the server ended before listening: ${head}`);
  head += r.value;
}
(async () => {
  while (!(await lines.read()).done) { /* drain */ }
})();
const url = /listening on (http:\/\/\S+?)\//.exec(head)![1];
const health = await (await fetch(`${url}/health`)).json();

interface Stream {
  ttft: number;
  gaps: number[];
  tokens: number;
}

async function one(i: number, text = prompt(i), max = maxTokens): Promise<Stream> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      prompt: text,
      max_tokens: max,
      temperature: Number(v.temperature),
      top_p: Number(v["top-p"]),
      seed: i,
      logit_bias: { 0: -100 }, // no end-of-text: every stream generates max_tokens
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", last = 0, ttft = NaN, tokens = 0;
  const gaps: number[] = [];
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    buf += r.value;
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: {")) continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) tokens = j.usage.completion_tokens;
      if (!j.choices?.[0]?.text) continue;
      const now = performance.now();
      if (Number.isNaN(ttft)) ttft = now - t0;
      else gaps.push(now - last);
      last = now;
    }
  }
  return { ttft, gaps, tokens };
}

const rows: ThroughputRow[] = [];
try {
  await one(1_000_000); // warm-up: compile paths, fault the weights in
  for (const n of streams) {
    let peak = rssOf(server.pid);
    const timer = setInterval(() => peak = Math.max(peak, rssOf(server.pid)), 50);
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(timer);
    peak = Math.max(peak, rssOf(server.pid));
    const tokens = results.reduce((a, r) => a + r.tokens, 0);
    const agg = tokens / seconds;
    const ttfts = results.map((r) => r.ttft);
    const gaps = results.flatMap((r) => r.gaps);
    rows.push({
      streams: n,
      aggregateTokPerSec: Math.round(agg * 10) / 10,
      ratio: rows.length ? Math.round((agg / rows[0].aggregateTokPerSec) * 100) / 100 : 1,
      ttftP50Ms: Math.round(pct(ttfts, 50)),
      ttftP99Ms: Math.round(pct(ttfts, 99)),
      itlP50Ms: Math.round(pct(gaps, 50) * 10) / 10,
      itlP99Ms: Math.round(pct(gaps, 99) * 10) / 10,
      peakRssMiB: Math.round(peak),
    });
    const r = rows.at(-1)!;
    console.log(
      `N=${String(n).padStart(2)}  ${r.aggregateTokPerSec.toFixed(1).padStart(7)} tok/s  ` +
        `×${r.ratio.toFixed(2)}  TTFT p50/p99 ${r.ttftP50Ms}/${r.ttftP99Ms} ms  ` +
        `ITL p50/p99 ${r.itlP50Ms}/${r.itlP99Ms} ms  peak RSS ${r.peakRssMiB} MiB`,
    );
  }
  if (v["join-prompt"]) {
    const want = Number(v["join-prompt"]);
    const n = Math.max(...streams);
    let long = "";
    for (let i = 0; tokenizer.encode(long).length < want; i++) long += prompt(i) + " ";
    const ids = tokenizer.encode(long).slice(0, want);
    const text = tokenizer.decode(ids);
    const runs = Array.from({ length: n }, (_, i) => one(i));
    // join once every stream is decoding: poll /health until n sequences generate
    for (let k = 0; k < 2000; k++) {
      const h = await (await fetch(`${url}/health`)).json();
      if (h.batch >= n && h.prefilling === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const joiner = one(n, text, 1);
    const results = await Promise.all(runs);
    await joiner;
    const gaps = results.flatMap((r) => r.gaps);
    const base = rows.find((r) => r.streams === n)!;
    console.log(
      `N=${n} with a ${ids.length}-token prompt joining: ITL p50/p99 ` +
        `${pct(gaps, 50).toFixed(1)}/${pct(gaps, 99).toFixed(1)} ms ` +
        `(without: ${base.itlP50Ms}/${base.itlP99Ms} ms; max gap ${
          Math.max(...gaps).toFixed(1)
        } ms)`,
    );
  }
  if (v.abandon) {
    const ctrl = new AbortController();
    const gone = fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: prompt(0), max_tokens: 4000, logit_bias: { 0: -100 } }),
      signal: ctrl.signal,
    }).catch(() => {});
    const health = async () => await (await fetch(`${url}/health`)).json();
    for (let k = 0; k < 4000 && (await health()).batch === 0; k++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    ctrl.abort();
    await gone;
    let k = 0;
    while ((await health()).batch > 0 && k++ < 20000) { /* poll */ }
    console.log(
      `abandoned non-streaming request: its place freed ${
        (performance.now() - t0).toFixed(0)
      } ms after the client left`,
    );
  }
} finally {
  server.kill("SIGTERM");
  await server.status;
}

console.log(
  `model ${v.model} (${health.dtype}, ${health.engine}), max-batch ${maxBatch}, ` +
    `max-prefill-tokens-per-step ${v["max-prefill-tokens-per-step"]}, max_tokens ${maxTokens}`,
);
if (v.json) {
  const out = { model: v.model, dtype: health.dtype, engine: health.engine, rows };
  const bytes = new TextEncoder().encode(JSON.stringify(out, null, 2) + "\n");
  await writeAtomic(v.json, (f) => writeAll(f, bytes), true);
}
