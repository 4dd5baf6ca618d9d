/**
 * The chat-completions prefix cache: a 10-turn chat where each request resends the whole
 * history, against a server with the cache and one without (same model, one after the other).
 * Prints per turn the prompt tokens, the tokens taken from the cache and the latency of both,
 * and the speed-up on the last turn.
 *
 *   deno run -A bench/serve_prefix_cache.ts --model /tmp/models/7-0.1b.safetensors --dtype q8 \
 *     [--turns 10] [--max-tokens 32] [--tokenizer FILE] [--threads 2]
 * @module
 */

import { parseArgs } from "node:util";
import { loadModel } from "../lib/load.ts";
import { startServer } from "../lib/server/mod.ts";
import { findTokenizerFor, loadTokenizer } from "../lib/tokenizer/mod.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "q8" },
    threads: { type: "string", default: "2" },
    tokenizer: { type: "string" },
    turns: { type: "string", default: "10" },
    "max-tokens": { type: "string", default: "32" },
  },
});
if (!v.model) {
  console.error("error: --model is required");
  Deno.exit(2);
}
const model = await loadModel(v.model, {
  dtype: v.dtype as "q8",
  threads: Number(v.threads),
});
const tokPath = v.tokenizer ?? await findTokenizerFor(v.model, model.info.vocab) ??
  new URL("../../shared/fixtures/tokenizers/rwkv_vocab_v20230424.txt", import.meta.url).pathname;
const tokenizer = await loadTokenizer(tokPath);
const cached = startServer({ model, tokenizer, port: 0 });
const plain = startServer({ model, tokenizer, port: 0, prefixCache: false });
const topics = ["the sea", "mountains", "old cities", "music", "gardens", "rivers", "stars"];

async function ask(url: string, messages: unknown[]) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages, max_tokens: Number(v["max-tokens"]), temperature: 0 }),
  });
  const j = await res.json();
  if (res.status !== 200) throw new Error(JSON.stringify(j));
  return { ms: performance.now() - t0, j };
}

try {
  const history: { role: string; content: string }[] = [];
  let last = { with: 0, without: 0 };
  for (let t = 0; t < Number(v.turns); t++) {
    history.push({ role: "user", content: `Tell me something about ${topics[t % 7]}.` });
    const a = await ask(cached.url, history);
    const b = await ask(plain.url, history);
    const u = a.j.usage;
    console.log(
      `turn ${String(t + 1).padStart(2)}: prompt ${u.prompt_tokens} tokens, ` +
        `${u.prompt_tokens_details.cached_tokens} from the cache; ` +
        `${a.ms.toFixed(0)} ms with the cache, ${b.ms.toFixed(0)} ms without` +
        (a.j.choices[0].message.content === b.j.choices[0].message.content
          ? ""
          : " (replies differ!)"),
    );
    history.push({ role: "assistant", content: a.j.choices[0].message.content });
    last = { with: a.ms, without: b.ms };
  }
  console.log(`last turn: ×${(last.without / last.with).toFixed(2)} faster with the cache`);
} finally {
  await cached.shutdown();
  await plain.shutdown();
  await model.dispose();
}
