/**
 * The table of backends: each one name (`reference`, `wasm`, `webgpu`), the line `--help`
 * shows, and its loader. `loadModel` picks from here; adding a backend is implementing the
 * `Ops` interface (`lib/model/ops.ts`) and an engine, and adding a line here (see
 * `docs/ARCHITECTURE.md`).
 * @module
 */

import type { Checkpoint } from "../formats/checkpoint.ts";
import type { CreateModelOptions, Model } from "../model/model.ts";
import { createReferenceModel } from "./reference/mod.ts";
import { createWasmModel } from "./wasm/mod.ts";
import { createWebGpuModel, hasHardwareGpu } from "./webgpu/mod.ts";
import { UsageError } from "../errors.ts";

/**
 * A backend's name, as `loadModel({ backend })` and `--backend` take it.
 * @example
 * ```ts
 * const name: BackendName = "wasm";
 * ```
 */
export type BackendName = "reference" | "wasm" | "webgpu";

/**
 * Options every backend's loader is given (each reads the ones it knows).
 * @example
 * ```ts
 * const opts: BackendOptions = { dtype: "q8", threads: 2 };
 * ```
 */
export interface BackendOptions extends CreateModelOptions {
  /** `wasm`: Worker threads (default: the machine's cores, at most 8). */
  threads?: number;
  /** `wasm`: states kept in the backend's memory between calls (default 64). */
  maxResidentStates?: number;
}

/**
 * One backend of the table.
 * @example
 * ```ts
 * import { openCheckpoint } from "../formats/open.ts";
 * const ck = await openCheckpoint("model.pth");
 * const model = await BACKENDS.reference.create(ck, { dtype: "f32" });
 * ```
 */
export interface Backend {
  /** What it is, in a few words (for `--help`). */
  readonly about: string;
  /** Loads `ck` on it. */
  create(ck: Checkpoint, options: BackendOptions): Promise<Model>;
}

/**
 * Every backend, by name.
 * @example
 * ```ts
 * for (const [name, b] of Object.entries(BACKENDS)) console.log(name, b.about);
 * ```
 */
export const BACKENDS: Readonly<Record<BackendName, Backend>> = {
  reference: { about: "plain TypeScript, one thread (the oracle)", create: createReferenceModel },
  wasm: { about: "Workers running WebAssembly SIMD kernels", create: createWasmModel },
  webgpu: { about: "WGSL compute shaders on a GPU", create: createWebGpuModel },
};

/** The environment variable that, when set, is what `auto` picks. */
const ENV_BACKEND = "RWKV_BACKEND";

/** `RWKV_BACKEND` when set (not empty, not `auto`) and readable without asking. */
function envBackend(): BackendName | undefined {
  let v: string | undefined;
  try {
    if (Deno.permissions.querySync({ name: "env", variable: ENV_BACKEND }).state !== "granted") {
      return undefined;
    }
    v = Deno.env.get(ENV_BACKEND);
  } catch {
    return undefined;
  }
  if (!v || v === "auto") return undefined;
  if (!Object.hasOwn(BACKENDS, v)) {
    const names = Object.keys(BACKENDS);
    throw new UsageError(
      `invalid ${ENV_BACKEND} "${v}": expected auto, ${names.slice(0, -1).join(", ")} or ${
        names.at(-1)
      }`,
    );
  }
  return v as BackendName;
}

/**
 * The backend `auto` picks: `$RWKV_BACKEND` when set (and readable without a permission
 * prompt), else `webgpu` on a hardware GPU (a software adapter is never picked), else `wasm`.
 * Setting `RWKV_BACKEND=wasm` also keeps `auto` from probing for a GPU at all (the test suite
 * does this: see tests/_webgpu.ts).
 * @example
 * ```ts
 * const name = await autoBackend(); // "wasm" on a machine without a GPU
 * ```
 */
export async function autoBackend(): Promise<BackendName> {
  return envBackend() ?? (await hasHardwareGpu() ? "webgpu" : "wasm");
}
