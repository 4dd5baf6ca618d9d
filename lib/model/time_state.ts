/**
 * State tuning: a trained initial state, stored as one `blocks.N.att.time_state` tensor per
 * layer, shape (H, N, N), as RWKV-PEFT saves it (inside a checkpoint or in a side file).
 *
 * Orientation: RWKV-PEFT's v5/v6 kernels keep the state as [head][value][key]; the official
 * package (and our state) uses [head][key][value] for RWKV-5/6, so ChatRWKV loads it with
 * `time_state.transpose(1, 2)`. For RWKV-7 the training kernel's initial state is
 * [head][value][key], the official package's own RWKV-7 order: copied as is. The token-shift
 * parts of the state stay zero.
 * @module
 */

import { ModelError } from "../errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { toFloat32 } from "../formats/dtype.ts";
import { openCheckpoint } from "../formats/open.ts";
import type { ModelSpec } from "../spec/spec.ts";
import { State } from "./state.ts";

const NAME = /^blocks\.(\d+)\.att\.time_state$/;

/**
 * The tensor name holding layer `i`'s tuned state.
 * @example
 * ```ts
 * timeStateName(3); // "blocks.3.att.time_state"
 * ```
 */
export function timeStateName(layer: number): string {
  return `blocks.${layer}.att.time_state`;
}

/** True when the checkpoint holds any `blocks.N.att.time_state` tensor. */
export function hasTimeState(ck: Pick<Checkpoint, "tensors">): boolean {
  for (const name of ck.tensors.keys()) if (NAME.test(name)) return true;
  return false;
}

/**
 * Reads every `blocks.N.att.time_state` tensor of a checkpoint as float32 (undefined when it
 * has none).
 * @example
 * ```ts
 * import { openCheckpoint } from "../formats/open.ts";
 * const ts = await readTimeState(await openCheckpoint("state.pth"));
 * ```
 */
export async function readTimeState(
  ck: Checkpoint,
): Promise<Map<string, Float32Array> | undefined> {
  if (!hasTimeState(ck)) return undefined;
  const out = new Map<string, Float32Array>();
  for (const [name, info] of ck.tensors) {
    if (NAME.test(name)) out.set(name, toFloat32(await ck.read(name), info.dtype));
  }
  return out;
}

/**
 * Writes tuned states into `state` (in place, and returns it): for every layer, the wkv
 * part becomes that layer's `time_state` (transposed to our order for RWKV-5/6). Every layer
 * must be present with H·N·N values; RWKV-4 has no such state.
 * @example
 * ```ts
 * import type { Checkpoint } from "../formats/checkpoint.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model, ck: Checkpoint;
 * const tuned = await readTimeState(ck); // undefined when the file has no time_state
 * if (tuned) applyTimeState(model.createState(), tuned);
 * ```
 */
export function applyTimeState(
  state: State,
  tensors: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>,
  file = "time_state",
): State {
  const spec: ModelSpec = state.spec;
  if (spec.version === "4") throw new ModelError(`${file}: RWKV-4 has no time_state to tune`);
  const get = (n: string) =>
    tensors instanceof Map ? tensors.get(n) : (tensors as Record<string, Float32Array>)[n];
  const H = spec.heads, N = spec.headSize;
  for (let i = 0; i < spec.layers; i++) {
    const name = timeStateName(i);
    const ts = get(name);
    if (!ts) {
      throw new ModelError(`${file}: ${name} is missing (the model has ${spec.layers} layers)`);
    }
    if (ts.length !== H * N * N) {
      throw new ModelError(
        `${file}: ${name} has ${ts.length} values, the model needs (${H}, ${N}, ${N})`,
      );
    }
    const wkv = state.tensors[i * 3 + 1]; // (H, N, N)
    if (spec.version === "7") wkv.set(ts);
    else {
      for (let h = 0; h < H; h++) {
        const o = h * N * N;
        for (let a = 0; a < N; a++) {
          for (let b = 0; b < N; b++) wkv[o + a * N + b] = ts[o + b * N + a];
        }
      }
    }
  }
  const extra = [...(tensors instanceof Map ? tensors.keys() : Object.keys(tensors))]
    .map((n) => NAME.exec(n)).filter((m) => m && Number(m[1]) >= spec.layers);
  if (extra.length) {
    throw new ModelError(
      `${file}: has time_state for layer ${extra[0]![1]}, the model has ${spec.layers}`,
    );
  }
  return state;
}

/**
 * Loads a state-tuning side file (`.pth` or `.safetensors` holding `blocks.N.att.time_state`
 * tensors) as the initial state for `model`. Set it as `model.initialState` so
 * `model.createState()` starts from it.
 * @example
 * ```ts
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * model.initialState = await loadTimeStateFile(model, "rwkv-7-role-play.pth");
 * ```
 */
export async function loadTimeStateFile(
  model: { spec: ModelSpec },
  path: string,
): Promise<State> {
  const ck = await openCheckpoint(path);
  try {
    const ts = await readTimeState(ck);
    if (!ts) throw new ModelError(`${path}: no blocks.N.att.time_state tensors in it`);
    return applyTimeState(new State(model.spec), ts, path);
  } finally {
    ck.close();
  }
}
