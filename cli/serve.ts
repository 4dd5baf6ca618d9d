/**
 * Serves an RWKV model over an OpenAI-compatible HTTP API, with a chat page at `/`.
 *
 *   deno run -A cli/serve.ts --model MODEL [--port 8000] [--host 127.0.0.1]
 *
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { loadTimeStateFile } from "../lib/model/time_state.ts";
import type { Model } from "../lib/model/model.ts";
import { State } from "../lib/model/state.ts";
import { type ChatTemplate, openStore, startServer, type StateStore } from "../lib/server/mod.ts";
import { validateTemplate } from "../lib/server/template.ts";
import { BACKEND_HELP, flagsOrHelp, loadFromFlags } from "./_common.ts";
import { runCli } from "./_main.ts";

const HELP = `Serve an RWKV model: OpenAI-compatible API and a chat page.

Usage:
  deno run -A cli/serve.ts --model MODEL [options]

  --model PATH|URL|hf:OWNER/REPO/FILE
  --tokenizer PATH|bytes  default: a known tokenizer file next to the model
  --state FILE            state-tuning file (blocks.N.att.time_state) for every request
  --dtype auto|f32|bf16|f16|q8|q4   (default auto)
  --threads N             worker threads (default: cores)
${BACKEND_HELP}
  --huge-pages on|off     2 MiB pages for the weights on Linux (default on: decoding faster;
                          the load may take seconds longer)
  --host HOST             interface (default 127.0.0.1; 0.0.0.0 exposes it to the network)
  --port N                (default 8000; 0 = any free port)
  --max-batch N           sequences decoded together, one forward pass per step (default 8)
  --max-prefill-tokens-per-step N
                          prompt tokens read per step across joining requests (default 256):
                          a long prompt joining delays running streams by at most this much work
  --queue N               requests waiting beyond the batch (default 16; more get 429)
  --max-prompt-tokens N   longest prompt accepted (default 16384; longer get 400)
  --alias NAME            another model name requests may use (repeatable; others get 404)
  --cors ORIGIN           allow this browser origin (repeatable; * for any; default none)
  --template FILE         chat template, JSON {"system","user","assistant","generation"} with
                          {content} placeholders (default RWKV World: "User: {content}\n\n"),
                          and optionally the tool-call format: "tools" (what the system turn
                          listing the functions says: {tools} = one JSON line each, {toolCall} =
                          the tag), "tool" (a result turn, {content}) and "toolCall" (the tag a
                          reply's JSON list of calls follows; default "<tool_call>")
  --stop STRING           a chat stop string (repeatable; default "\n\n" and "\nUser:")
  --state-store memory|redis://HOST:PORT/DB   where states and responses live (default memory)
  --state-store-bytes N   memory store size (default 1073741824)
  --state-spill-dir DIR   memory store: write evicted states here instead of dropping them
  --state-ttl SECONDS     life of stored responses and cached states (default 86400; 0 = ever)
  --no-prefix-cache       do not resume chat completions from cached prefixes
  --named-state NAME=FILE a state requests may start from ("state": NAME): a time_state file
                          or a saved state (repeatable)
  --api-key KEY           require "Authorization: Bearer KEY" on /v1/* (or env RWKV_API_KEY)
  --max-body BYTES        largest request body (default 1048576)
  --name NAME             model id shown by /v1/models
  --server-id ID          sent as x-rwkv-server on every response (default HOSTNAME:PORT)
  --quiet
  -h, --help

Endpoints: GET /  GET /health  GET /v1/models[/ID]  POST /v1/completions
  POST /v1/chat/completions  POST /v1/responses  GET|DELETE /v1/responses/ID
  GET /v1/responses/ID/state  GET|PUT|DELETE /v1/states/NAME
`;

function int(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be a whole number ≥ ${min}, not ${JSON.stringify(v)}`);
  }
  return n;
}

/** This machine's name (`localhost` when the permission to read it is missing). */
function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** A `--template` file: JSON with the four patterns (bad ones named, exit 2). */
async function readTemplate(path: string): Promise<ChatTemplate> {
  let t: ChatTemplate;
  try {
    t = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new UsageError(`--template ${path}: ${(e as Error).message}`);
  }
  try {
    validateTemplate(t);
  } catch (e) {
    throw new UsageError(`--template ${path}: ${(e as Error).message}`);
  }
  return t;
}

/** A `--named-state` file: a saved state (`State.save`) or a state-tuning file. */
async function readStateFile(model: Model, path: string): Promise<State> {
  const head = new Uint8Array(16);
  try {
    const f = await Deno.open(path);
    await f.read(head);
    f.close();
  } catch (e) {
    throw new UsageError(`--named-state ${path}: ${(e as Error).message}`);
  }
  if (new TextDecoder().decode(head).startsWith("RWKVSTATE1")) {
    return await State.load(model.spec, path);
  }
  return await loadTimeStateFile(model, path);
}

/** Runs the server CLI until SIGINT/SIGTERM (or `signal`); returns the exit code. */
export async function main(argv: string[], signal?: AbortSignal): Promise<number> {
  const parsed = flagsOrHelp({
    args: argv,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      state: { type: "string" },
      dtype: { type: "string" },
      threads: { type: "string" },
      backend: { type: "string" },
      engine: { type: "string" },
      device: { type: "string" },
      "huge-pages": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "max-batch": { type: "string" },
      concurrency: { type: "string" },
      "max-prefill-tokens-per-step": { type: "string" },
      queue: { type: "string" },
      "max-prompt-tokens": { type: "string" },
      alias: { type: "string", multiple: true },
      cors: { type: "string", multiple: true },
      template: { type: "string" },
      stop: { type: "string", multiple: true },
      "state-store": { type: "string" },
      "state-store-bytes": { type: "string" },
      "state-spill-dir": { type: "string" },
      "state-ttl": { type: "string" },
      "no-prefix-cache": { type: "boolean", default: false },
      "named-state": { type: "string", multiple: true },
      "api-key": { type: "string" },
      "max-body": { type: "string" },
      name: { type: "string" },
      "server-id": { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }, HELP);
  if (!parsed) return 0;
  const v = parsed.values;
  if (!v.model) {
    console.error("error: --model is required (see --help)");
    return 2;
  }
  const port = int(v.port, "port", 8000);
  const maxBatch = int(v["max-batch"] ?? v.concurrency, "max-batch", 8, 1);
  const maxPrefill = int(v["max-prefill-tokens-per-step"], "max-prefill-tokens-per-step", 256, 1);
  const queue = int(v.queue, "queue", 16);
  const maxPrompt = int(v["max-prompt-tokens"], "max-prompt-tokens", 16384, 1);
  const storeBytes = int(v["state-store-bytes"], "state-store-bytes", 1024 ** 3, 1);
  const ttl = int(v["state-ttl"], "state-ttl", 86400);
  const template = v.template ? await readTemplate(v.template) : undefined;
  const storeSpec = v["state-store"];
  if (storeSpec !== undefined && storeSpec !== "memory" && !/^rediss?:\/\/./.test(storeSpec)) {
    throw new UsageError(
      `--state-store must be 'memory' or redis://HOST:PORT/DB, not ${JSON.stringify(storeSpec)}`,
    );
  }
  const named: [string, string][] = (v["named-state"] ?? []).map((x) => {
    const m = /^([\w.-]{1,128})=(.+)$/.exec(x);
    if (!m) throw new UsageError(`--named-state must be NAME=FILE, not ${JSON.stringify(x)}`);
    return [m[1], m[2]];
  });
  const maxBody = int(v["max-body"], "max-body", 1024 * 1024, 1);
  // a server loads once and decodes for hours: huge pages unless asked not to
  const { model, tokenizer, chat } = await loadFromFlags({
    ...v,
    "huge-pages": v["huge-pages"] ?? "on",
  });
  try {
    const namedStates = new Map<string, State>();
    for (const [name, file] of named) namedStates.set(name, await readStateFile(model, file));
    let store: StateStore;
    try {
      store = await openStore(storeSpec, {
        maxBytes: storeBytes,
        spillDir: v["state-spill-dir"],
      });
    } catch (e) {
      throw new UsageError(`--state-store: ${(e as Error).message}`);
    }
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
      maxBatch,
      maxPrefillTokensPerStep: maxPrefill,
      queue,
      maxPromptTokens: maxPrompt,
      aliases: v.alias,
      cors: v.cors,
      template: template ?? chat?.template,
      stop: v.stop ?? chat?.stops,
      store,
      stateTtlSeconds: ttl,
      prefixCache: !v["no-prefix-cache"],
      namedStates,
      serverId: v["server-id"] ?? `${hostname()}:${port || `pid${Deno.pid}`}`,
      apiKey: v["api-key"] ?? Deno.env.get("RWKV_API_KEY") ?? undefined,
      maxBodyBytes: maxBody,
      signal: stop.signal,
    });
    // one machine-readable line, so scripts (and tests) can find the port
    console.log(`listening on ${server.url}/ (model ${server.api.modelName})`);
    await server.finished;
    await store.close();
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
