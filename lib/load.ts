/**
 * `loadModel`: a checkpoint path in, a running model out.
 * @module
 */

import { UsageError } from "./errors.ts";
import { resolveModel, type ResolveOptions } from "./fetch.ts";
import type { CheckpointLimits } from "./formats/checkpoint.ts";
import { openCheckpoint } from "./formats/open.ts";
import { autoBackend, type BackendName, BACKENDS } from "./backend/mod.ts";
import type { Model } from "./model/model.ts";
import { State } from "./model/state.ts";
import { applyTimeState, readTimeState } from "./model/time_state.ts";
import type { WeightDType } from "./model/weights.ts";

/**
 * Options of {@link loadModel}.
 * @example
 * ```ts
 * import type { LoadModelOptions } from "./load.ts";
 * const opts: LoadModelOptions = { dtype: "q8", threads: 2, backend: "wasm" };
 * ```
 */
export interface LoadModelOptions {
  /**
   * Storage of the large matrices: `auto` (default: the checkpoint's own float type), `f32`,
   * `bf16`, `f16`, or quantized on load `q8` / `q4`.
   */
  dtype?: WeightDType;
  /** Worker threads of the `wasm` backend (default: the machine's cores, at most 8). */
  threads?: number;
  /**
   * What runs the model: `wasm` (Workers running WebAssembly SIMD kernels on the CPU),
   * `reference` (plain TypeScript, one thread), `webgpu` (WGSL compute shaders on the GPU WebGPU
   * finds, a software adapter too), `auto` (default: `webgpu` on a hardware GPU, else `wasm`; a
   * software adapter is never picked).
   */
  backend?: "auto" | BackendName;
  /**
   * Old way to choose a CPU backend: `fast` (= `wasm`), `wasm`, `reference`, `auto`.
   * @deprecated Use {@link LoadModelOptions.backend}.
   */
  engine?: "auto" | "fast" | "wasm" | "reference";
  /**
   * Old way to choose the GPU: `webgpu` (= `backend: "webgpu"`), `cpu` (a CPU backend), `auto`.
   * @deprecated Use {@link LoadModelOptions.backend}.
   */
  device?: "auto" | "cpu" | "webgpu";
  /** Tokens per prompt-mode chunk (default 64). */
  chunk?: number;
  /** Loading progress: tensors done of total. */
  onProgress?: (done: number, total: number, name: string) => void;
  /**
   * Bytes the model may take (default: what the system has available now, `MemAvailable` on
   * Linux, `Deno.systemMemoryInfo()` elsewhere): a model that needs more is refused with an
   * `OutOfMemoryError` before anything large is allocated, saying which dtype would fit.
   */
  availableMemory?: number;
  /** For `hf:` and `https://` models: cache folder, expected sha256, progress. */
  download?: ResolveOptions;
  /**
   * Budgets of the checkpoint reader (see `DEFAULT_LIMITS` in `./formats`): raise them only for
   * a trusted file that exceeds one.
   */
  limits?: Partial<CheckpointLimits>;
  /**
   * States the wasm backend keeps in its memory between calls (default 64; see
   * `maxResidentStates` in `./backend`).
   */
  maxResidentStates?: number;
  /**
   * Transparent huge pages (2 MiB) for the weights' memories on Linux (default false): decoding
   * reads them 1.03–1.05× faster (2.9B q8 and q4), and the load may take seconds longer while the
   * kernel finds the pages. Needs FFI permission; otherwise ignored. See `model/huge_pages.ts`.
   */
  hugePages?: boolean;
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
 * Loads an RWKV-4/5/6/7 checkpoint (`.pth`, `.safetensors`, GGUF, rwkv.cpp `.bin`, or our quantized
 * file; a local path, or `hf:OWNER/REPO/FILE` / an `https://` URL downloaded once into the cache) and returns a model whose `forward(tokens, state)` matches the official package.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const model = await loadModel("../shared/fixtures/tiny-rwkv-4v0.pth", { dtype: "q8", threads: 2 });
 * const state = model.createState();
 * const logits = await model.forward([187, 110], state);
 * console.log(logits.length); // 256
 * await model.dispose();
 * ```
 */
export async function loadModel(
  pathOrUrl: string | URL,
  options: LoadModelOptions = {},
): Promise<Model> {
  validateLoadOptions(options);
  const path = await toPath(pathOrUrl, options.download);
  try {
    if (!(await Deno.stat(path)).isFile) throw new UsageError(`model ${path} is not a file`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`model file ${path} does not exist`, { cause: e });
    }
    throw e;
  }
  const chosen = chooseBackend(options);
  const backend = chosen === "auto" ? await autoBackend() : chosen;
  const ck = await openCheckpoint(path, { limits: options.limits });
  try {
    const model = await BACKENDS[backend].create(ck, options);
    // A state-tuned checkpoint: new states start from its time_state.
    const tuned = await readTimeState(ck);
    if (tuned) model.initialState = applyTimeState(new State(model.spec), tuned, path);
    return model;
  } finally {
    ck.close();
  }
}

const DTYPES: readonly string[] = ["auto", "f32", "bf16", "f16", "q8", "q4"];
const BACKEND_NAMES: readonly string[] = ["auto", ...Object.keys(BACKENDS)];
const ENGINES: readonly string[] = ["auto", "fast", "wasm", "reference"];
const DEVICES: readonly string[] = ["auto", "cpu", "webgpu"];

/**
 * The backend `options` ask for (`auto`: {@link autoBackend} decides), from `backend` or the
 * deprecated `engine` (`fast` = `wasm`) and `device`; a UsageError when they disagree.
 * @example
 * ```ts
 * import { chooseBackend } from "./load.ts";
 * console.log(chooseBackend({ engine: "fast" })); // wasm
 * ```
 */
export function chooseBackend(options: LoadModelOptions): "auto" | BackendName {
  const engine = options.engine === "fast" ? "wasm" : options.engine ?? "auto";
  const device = options.device ?? "auto";
  if (device === "webgpu" && engine !== "auto") {
    throw new UsageError(`engine ${options.engine} runs on the CPU, not on device webgpu`);
  }
  const backend = options.backend ?? "auto";
  if (backend === "auto") {
    // what the old options alone ask for
    if (device === "webgpu") return "webgpu";
    if (engine !== "auto") return engine;
    return device === "cpu" ? "wasm" : "auto";
  }
  const clash = (device === "webgpu") !== (backend === "webgpu") && device !== "auto" ||
    engine !== "auto" && engine !== backend;
  if (clash) {
    const given = [
      options.engine !== undefined && `engine ${options.engine}`,
      options.device !== undefined && `device ${options.device}`,
    ].filter(Boolean).join(" and ");
    throw new UsageError(`backend ${backend} disagrees with ${given}: give backend alone`);
  }
  return backend;
}

/** `x` as `a, b or c`. */
function oneOf(list: readonly string[]): string {
  return `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`;
}

/**
 * Checks every option of {@link loadModel} before anything is loaded; throws a UsageError
 * naming the first bad one (and what it accepts).
 * @example
 * ```ts
 * import { validateLoadOptions } from "./load.ts";
 * import { UsageError } from "./errors.ts";
 * try {
 *   validateLoadOptions({ dtype: "q5" as "q8" });
 * } catch (e) {
 *   console.log(e instanceof UsageError, (e as Error).message); // true invalid dtype "q5": …
 * }
 * ```
 */
export function validateLoadOptions(options: LoadModelOptions): void {
  if (options === null || typeof options !== "object") {
    throw new UsageError(`loadModel options must be an object, not ${options}`);
  }
  const pick = (name: string, value: unknown, list: readonly string[]) => {
    if (value !== undefined && !list.includes(value as string)) {
      throw new UsageError(`invalid ${name} ${JSON.stringify(value)}: expected ${oneOf(list)}`);
    }
  };
  pick("dtype", options.dtype, DTYPES);
  pick("backend", options.backend, BACKEND_NAMES);
  pick("engine", options.engine, ENGINES);
  pick("device", options.device, DEVICES);
  chooseBackend(options);
  const whole = (name: string, value: unknown, max: number) => {
    if (
      value !== undefined &&
      (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max)
    ) {
      throw new UsageError(
        `invalid ${name} ${JSON.stringify(value)}: expected a whole number from 1 to ${max}`,
      );
    }
  };
  whole("threads", options.threads, 64);
  if (options.hugePages !== undefined && typeof options.hugePages !== "boolean") {
    throw new UsageError(
      `invalid hugePages ${JSON.stringify(options.hugePages)}: expected true or false`,
    );
  }
  whole("chunk", options.chunk, 4096);
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
    throw new UsageError("invalid onProgress: expected a function");
  }
  whole("maxResidentStates", options.maxResidentStates, 1 << 20);
  const mem = options.availableMemory;
  if (mem !== undefined && !(typeof mem === "number" && mem >= 0)) {
    throw new UsageError(`invalid availableMemory ${JSON.stringify(mem)}: expected bytes ≥ 0`);
  }
  if (
    options.limits !== undefined && (options.limits === null || typeof options.limits !== "object")
  ) {
    throw new UsageError("invalid limits: expected an object of checkpoint budgets");
  }
  if (options.download !== undefined && typeof options.download !== "object") {
    throw new UsageError("invalid download: expected an object of download options");
  }
}
