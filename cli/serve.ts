/**
 * Serves an RWKV model over an OpenAI-compatible HTTP API, with a chat page at `/`.
 *
 *   deno run -A cli/serve.ts --model MODEL [--port 8000] [--host 127.0.0.1]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { startServer } from "../lib/server/mod.ts";
import { loadFromFlags } from "./_common.ts";
import { runCli } from "./_main.ts";

const HELP = `Serve an RWKV model: OpenAI-compatible API and a chat page.

Usage:
  deno run -A cli/serve.ts --model MODEL [options]

  --model PATH|URL|hf:OWNER/REPO/FILE
  --tokenizer PATH|bytes  default: a known tokenizer file next to the model
  --state FILE            state-tuning file (blocks.N.att.time_state) for every request
  --dtype auto|f32|bf16|f16|q8|q4   (default auto)
  --threads N   --engine auto|fast|reference   --device auto|cpu|webgpu
  --host HOST             interface (default 127.0.0.1; 0.0.0.0 exposes it to the network)
  --port N                (default 8000; 0 = any free port)
  --concurrency N         generations at once (default 1)
  --queue N               requests waiting beyond those (default 16; more get 429)
  --api-key KEY           require "Authorization: Bearer KEY" on /v1/* (or env RWKV_API_KEY)
  --max-body BYTES        largest request body (default 1048576)
  --name NAME             model id shown by /v1/models
  --quiet
  -h, --help

Endpoints: GET /  GET /health  GET /v1/models  POST /v1/completions  POST /v1/chat/completions
`;

function int(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be a whole number ≥ ${min}, not ${JSON.stringify(v)}`);
  }
  return n;
}

/** Runs the server CLI until SIGINT/SIGTERM (or `signal`); returns the exit code. */
export async function main(argv: string[], signal?: AbortSignal): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        tokenizer: { type: "string" },
        state: { type: "string" },
        dtype: { type: "string" },
        threads: { type: "string" },
        engine: { type: "string" },
        device: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        concurrency: { type: "string" },
        queue: { type: "string" },
        "api-key": { type: "string" },
        "max-body": { type: "string" },
        name: { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n(see --help)`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (!v.model) {
    console.error("error: --model is required (see --help)");
    return 2;
  }
  const port = int(v.port, "port", 8000);
  const concurrency = int(v.concurrency, "concurrency", 1, 1);
  const queue = int(v.queue, "queue", 16);
  const maxBody = int(v["max-body"], "max-body", 1024 * 1024, 1);
  const { model, tokenizer } = await loadFromFlags(v);
  try {
    const stop = new AbortController();
    signal?.addEventListener("abort", () => stop.abort(), { once: true });
    const onSig = () => stop.abort();
    for (const s of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(s, onSig);
      } catch { /* not on this platform */ }
    }
    const server = startServer({
      model,
      tokenizer,
      modelName: v.name,
      hostname: v.host ?? "127.0.0.1",
      port,
      concurrency,
      queue,
      apiKey: v["api-key"] ?? Deno.env.get("RWKV_API_KEY") ?? undefined,
      maxBodyBytes: maxBody,
      signal: stop.signal,
    });
    // one machine-readable line, so scripts (and tests) can find the port
    console.log(`listening on ${server.url}/ (model ${server.api.modelName})`);
    await server.finished;
    for (const s of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.removeSignalListener(s, onSig);
      } catch { /* not on this platform */ }
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

if (import.meta.main) await runCli(main);
