/**
 * Set-up that many tests share, each as a `with…` helper that undoes what it made when the test's
 * function ends, passes or throws: a loaded model, a running server, quantized files of a source.
 * @module
 */

import { openCheckpoint } from "../lib/formats/open.ts";
import type { Checkpoint } from "../lib/formats/checkpoint.ts";
import { loadModel, type LoadModelOptions } from "../lib/load.ts";
import type { Model } from "../lib/model/model.ts";
import { writeQuantized } from "../lib/quant/mod.ts";
import { type RunningServer, type ServerOptions, startServer } from "../lib/server/mod.ts";
import { tempDir } from "../testing/fixtures.ts";

/** Runs `fn` on the model at `path`, disposed afterwards. */
export async function withModel<T>(
  path: string,
  options: LoadModelOptions,
  fn: (model: Model) => Promise<T>,
): Promise<T> {
  const model = await loadModel(path, options);
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/** Runs `fn` against a server on a free loopback port (unless `port` says otherwise), shut down afterwards. */
export async function withServer<T>(
  options: ServerOptions,
  fn: (server: RunningServer) => Promise<T>,
): Promise<T> {
  const server = startServer({ port: 0, ...options });
  try {
    return await fn(server);
  } finally {
    await server.shutdown();
  }
}

/**
 * Writes `source` as a quantized file for each of `quants` in a temporary folder and runs
 * `fn(path, quant, source)` on each in turn; the source is closed and the folder removed afterwards.
 */
export async function withQuantized(
  source: string,
  quants: readonly ("q8" | "q4")[],
  fn: (path: string, quant: "q8" | "q4", source: Checkpoint) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = await tempDir();
  const src = await openCheckpoint(source);
  try {
    const stem = source.replace(/^.*\//, "").replace(/\.[^.]*$/, "");
    for (const quant of quants) {
      const out = `${dir}/${stem}-${quant}.safetensors`;
      await writeQuantized(src, out, { quant });
      await fn(out, quant, src);
    }
  } finally {
    src.close();
    await cleanup();
  }
}
