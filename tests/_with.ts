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

/** What a `deno run -A` of a project script printed, and its exit code. */
export interface ScriptRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a project script (`cli/generate.ts`, `bench/make_model.ts`, …) with `deno run -A`. */
export async function runScript(script: string, args: readonly string[]): Promise<ScriptRun> {
  const path = new URL(`../${script}`, import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Writes a random-weight model with `bench/make_model.ts` (`args`: its shape flags) to `out`;
 * throws with the script's stderr when it fails.
 */
export async function makeModel(out: string, args: readonly string[]): Promise<void> {
  const run = await runScript("bench/make_model.ts", [...args, "--out", out]);
  if (run.code !== 0) throw new Error(`make_model failed: ${run.stderr}`);
}
