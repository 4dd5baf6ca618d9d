/**
 * A server over the tiny RWKV-7 fixture (byte vocabulary, reference engine) and an official
 * `openai` client pointed at it, for the server tests.
 * @module
 */

import OpenAI from "openai";
import { loadModel } from "../lib/load.ts";
import type { Model } from "../lib/model/model.ts";
import { type RunningServer, startServer } from "../lib/server/mod.ts";
import { loadTokenizer, type Tokenizer } from "../lib/tokenizer/mod.ts";

/** What {@link tinyServer} started; `close` stops the server and the model. */
export interface TinyServer {
  model: Model;
  tokenizer: Tokenizer;
  server: RunningServer;
  client: OpenAI;
  close(): Promise<void>;
}

/** Starts the server (model id "tiny", a free loopback port) and its client. */
export async function tinyServer(path: string): Promise<TinyServer> {
  const model = await loadModel(path, { backend: "reference", dtype: "f32" });
  const tokenizer = await loadTokenizer("bytes");
  const server = startServer({ model, tokenizer, port: 0, modelName: "tiny" });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  return {
    model,
    tokenizer,
    server,
    client,
    close: async () => {
      await server.shutdown();
      await model.dispose();
    },
  };
}
