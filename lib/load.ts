/**
 * `loadModel`: a checkpoint path in, a running model out.
 * @module
 */

import { UsageError } from "./errors.ts";
import { resolveModel, type ResolveOptions } from "./fetch.ts";
import { openCheckpoint } from "./formats/open.ts";
import { createFastModel } from "./backend/wasm/mod.ts";
import { createReferenceModel } from "./backend/reference.ts";
import type { Model } from "./model/model.ts";
import { State } from "./model/state.ts";
import { applyTimeState, readTimeState } from "./model/time_state.ts";
import type { WeightDType } from "./model/weights.ts";

/**
 * Options of {@link loadModel}.
 * @example
 * ```ts ignore
 * const opts: LoadModelOptions = { dtype: "q8", threads: 2 };
 * const model = await loadModel("model.pth", opts);
 * ```
 */
export interface LoadModelOptions {
  /**
   * Storage of the large matrices: `auto` (default: the checkpoint's own float type), `f32`,
   * `bf16`, `f16`, or quantized on load `q8` / `q4`.
   */
  dtype?: WeightDType;
  /** Worker threads for the fast engine (default: the machine's cores, at most 8). */
  threads?: number;
  /** `fast` (Workers + WebAssembly SIMD), `reference` (plain TypeScript), `auto` (default). */
  engine?: "auto" | "fast" | "reference";
  /** Tokens per prompt-mode chunk (default 64). */
  chunk?: number;
  /** Loading progress: tensors done of total. */
  onProgress?: (done: number, total: number, name: string) => void;
  /** For `hf:` and `https://` models: cache folder, expected sha256, progress. */
  download?: ResolveOptions;
}

/**
 * Turns a path, `file:` URL, `hf:OWNER/REPO/FILE` or `https://` URL into a local path; the
 * remote ones are downloaded into the cache first (see `fetch.ts`).
 */
export async function toPath(pathOrUrl: string | URL, download?: ResolveOptions): Promise<string> {
  const s = pathOrUrl.toString();
  if (s.startsWith("file:")) return decodeURIComponent(new URL(s).pathname);
  return await resolveModel(s, download);
}

/**
 * Loads an RWKV-4/5/6/7 checkpoint (`.pth`, `.safetensors`, rwkv.cpp `.bin`, or our quantized
 * file; a local path, or `hf:OWNER/REPO/FILE` / an `https://` URL downloaded once into the cache) and returns a model whose `forward(tokens, state)` matches the official package.
 * @example
 * ```ts ignore
 * const model = await loadModel("model.pth", { dtype: "q8", threads: 2 });
 * const state = model.createState();
 * const logits = await model.forward([187, 510], state);
 * await model.dispose();
 * ```
 */
export async function loadModel(
  pathOrUrl: string | URL,
  options: LoadModelOptions = {},
): Promise<Model> {
  const path = await toPath(pathOrUrl, options.download);
  const engine = options.engine ?? "auto";
  if (!["auto", "fast", "reference"].includes(engine)) {
    throw new UsageError(`engine must be auto, fast or reference, not ${engine}`);
  }
  const ck = await openCheckpoint(path);
  try {
    const model = engine === "reference"
      ? await createReferenceModel(ck, options)
      : await createFastModel(ck, options);
    // A state-tuned checkpoint: new states start from its time_state.
    const tuned = await readTimeState(ck);
    if (tuned) model.initialState = applyTimeState(new State(model.spec), tuned, path);
    return model;
  } finally {
    ck.close();
  }
}
