/**
 * `GET /health`: what the server is doing (batch, queue, steps, tokens), its store and its model.
 * @module
 */

import type { Core } from "./_core.ts";
import { json } from "./_http.ts";
import { MAX_TOP_LOGPROBS } from "./logprobs.ts";
import type { SchedulerStats } from "./scheduler.ts";
import { TOOL_TEMPLATE } from "./tools.ts";
import type { StateStore } from "./store_types.ts";

/**
 * The health report; `identity`: the model's identity once the state bank computed it.
 * @example
 * ```ts
 * import type { Core } from "./_core.ts";
 * import type { StateStore } from "./store_types.ts";
 * declare const core: Core, store: StateStore, started: number;
 * const res = await handleHealth(core, store, started, () => Promise.resolve(undefined));
 * ```
 */
export async function handleHealth(
  core: Core,
  store: StateStore,
  started: number,
  identity: () => Promise<string | undefined>,
): Promise<Response> {
  const { scheduler, modelName, model } = core;
  const s: SchedulerStats = scheduler.stats();
  let storeInfo: Record<string, unknown>;
  try {
    storeInfo = await store.info();
  } catch (e) {
    storeInfo = { kind: store.kind, status: "unavailable", error: (e as Error).message };
  }
  return json({
    status: "ok",
    model: modelName,
    aliases: [...core.names].filter((n) => n !== modelName),
    identity: await identity(),
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    // batch: what runs now; queue: what waits for a place
    batch: s.running,
    prefilling: s.prefilling,
    queued: s.queued,
    maxBatch: s.maxBatch,
    queue: s.maxQueue,
    maxPrefillTokensPerStep: s.maxPrefillTokensPerStep,
    maxPromptTokens: core.maxPromptTokens,
    steps: s.steps,
    lastStep: { items: s.lastStepItems, ms: Math.round(s.lastStepMs * 100) / 100 },
    generatedTokens: s.generatedTokens,
    promptTokens: s.promptTokens,
    finished: s.finished,
    store: storeInfo,
    // what requests may ask for beyond plain text
    features: {
      responseFormat: ["text", "json_object", "json_schema"],
      completionsFormat: ["grammar", "json_schema"],
      tools: {
        toolChoice: ["none", "auto", "required", "function"],
        parallelToolCalls: true,
        callTag: core.template.toolCall ?? TOOL_TEMPLATE.toolCall,
      },
      logprobs: { maxTopLogprobs: MAX_TOP_LOGPROBS, values: "model log-softmax (raw)" },
    },
    engine: model.info.engine,
    dtype: model.info.dtype,
    rssMiB: Math.round(Deno.memoryUsage().rss / 2 ** 20),
  });
}
