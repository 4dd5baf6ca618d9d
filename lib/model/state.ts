/**
 * The recurrent state: plain Float32Arrays in the official package's order and shapes, all
 * views of one contiguous buffer so it clones, saves and crosses to Workers in one copy.
 *
 * - RWKV-4, per layer 5 vectors: `[att x_prev (C), aa (A), bb (A), pp (A), ffn x_prev (C)]`,
 *   `pp` starting at −1e30.
 * - RWKV-5/6, per layer: `[att x_prev (C), wkv (H, N, N) as [head][key][value], ffn x_prev (C)]`.
 * - RWKV-7, per layer: `[att x_prev (C), wkv (H, N, N) as [head][value][key], ffn x_prev (C)]`.
 * @module
 */

import { FormatError, ModelError } from "../errors.ts";
import { writeAll, writeAtomic } from "../formats/file.ts";
import type { ModelSpec } from "../spec/spec.ts";

const MAGIC = "RWKVSTATE1\n";

/**
 * Shapes of the state tensors of a model, in order.
 * @example
 * ```ts
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * stateShapes(model.spec); // RWKV-7: [[C], [H, N, N], [C], ...] per layer
 * ```
 */
export function stateShapes(spec: ModelSpec): number[][] {
  const shapes: number[][] = [];
  for (let i = 0; i < spec.layers; i++) {
    if (spec.version === "4") {
      shapes.push([spec.embd], [spec.attDim], [spec.attDim], [spec.attDim], [spec.embd]);
    } else {
      shapes.push([spec.embd], [spec.heads, spec.headSize, spec.headSize], [spec.embd]);
    }
  }
  return shapes;
}

function key(spec: ModelSpec): string {
  return `${spec.version}:${spec.layers}:${spec.embd}:${spec.attDim}:${spec.heads}`;
}

/**
 * For backends that keep a state's newest values in their own memory between calls (not part of
 * the public API): `raw` gives the state's own array without bringing values home; `hold` says
 * a backend now holds newer values, and `pull` copies them into `raw` (undefined: none does).
 * @example
 * ```ts
 * declare const state: State, engineCopy: Float32Array;
 * stateResidency().hold(state, () => stateResidency().raw(state).set(engineCopy));
 * ```
 */
export interface StateResidency {
  /** The state's own values, as they are (not brought home). */
  raw(state: State): Float32Array;
  /** Marks the state as held by a backend (`pull` brings its values home), or not. */
  hold(state: State, pull: (() => void) | undefined): void;
}

let residency: StateResidency;

/**
 * The residency hooks of {@link State} for backends (see {@link StateResidency}).
 * @example
 * ```ts
 * const { raw, hold } = stateResidency();
 * ```
 */
export function stateResidency(): StateResidency {
  return residency;
}

/**
 * A model's recurrent state. Forward calls update it in place.
 * @example
 * ```ts
 * import type { Model } from "./model.ts";
 * import type { Tokenizer } from "../tokenizer/types.ts";
 * declare const model: Model, tokenizer: Tokenizer, longPrompt: string;
 * const state = model.createState();
 * await model.forward(tokenizer.encode(longPrompt), state);
 * await state.save("prompt.state");                  // reuse a processed prompt later
 * const again = await State.load(model.spec, "prompt.state");
 * const branch = state.clone();                      // independent copy
 * ```
 */
export class State {
  /** The model shape it belongs to. */
  readonly spec: ModelSpec;
  #data: Float32Array;
  #tensors: Float32Array[];
  /** Set while a backend holds newer values than `#data`: brings them home. */
  #holder: (() => void) | undefined;

  /**
   * All values, contiguous. A backend keeps the newest values of the state it last ran in
   * its own memory between calls, and reading `data` or `tensors` brings them back first: so
   * read through the property after each call rather than keeping the array from before it
   * (the array is the same, its values are brought up to date by the read). Values read while
   * a forward call on this state is pending, or after one failed, are unspecified; two models
   * may not run one state at the same time (the second call is refused).
   */
  get data(): Float32Array {
    this.#sync();
    return this.#data;
  }

  /** The official state tensors, in order, as views of `data`. */
  get tensors(): Float32Array[] {
    this.#sync();
    return this.#tensors;
  }

  #sync(): void {
    const pull = this.#holder;
    if (pull) {
      this.#holder = undefined;
      pull();
    }
  }

  static {
    residency = {
      raw: (state) => state.#data,
      hold: (state, pull) => {
        state.#holder = pull;
      },
    };
  }

  /** A zeroed state (RWKV-4's `pp` set to −1e30), or one over existing `data`. */
  constructor(spec: ModelSpec, data?: Float32Array) {
    this.spec = spec;
    const shapes = stateShapes(spec);
    const total = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    if (data && data.length !== total) {
      throw new ModelError(`state has ${data.length} values, the model needs ${total}`);
    }
    this.#data = data ?? new Float32Array(total);
    this.#tensors = [];
    let off = 0;
    for (const s of shapes) {
      const n = s.reduce((x, y) => x * y, 1);
      this.#tensors.push(this.#data.subarray(off, off + n));
      off += n;
    }
    if (!data && spec.version === "4") {
      for (let i = 0; i < spec.layers; i++) this.#tensors[i * 5 + 3].fill(-1e30);
    }
  }

  /** An independent copy: branch a conversation cheaply. */
  clone(): State {
    return new State(this.spec, this.data.slice());
  }

  /** Copies `other`'s values into this state (same model shape). */
  copyFrom(other: State): void {
    if (key(other.spec) !== key(this.spec)) throw new ModelError("state of another model shape");
    this.data.set(other.data);
  }

  /** Serialises: a text header naming the model shape, then little-endian float32 values. */
  toBytes(): Uint8Array {
    const head = new TextEncoder().encode(
      MAGIC + JSON.stringify({ shape: key(this.spec), values: this.data.length }) + "\n",
    );
    const out = new Uint8Array(Math.ceil(head.length / 4) * 4 + this.data.byteLength);
    out.fill(0x20, 0, out.length - this.data.byteLength);
    out.set(head);
    out[out.length - this.data.byteLength - 1] = 0x0a;
    out.set(
      new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength),
      out.length - this.data.byteLength,
    );
    return out;
  }

  /** Reads bytes written by {@link State.toBytes}; the shape must match `spec`. */
  static fromBytes(spec: ModelSpec, bytes: Uint8Array, file = "state"): State {
    const text = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 512)));
    if (!text.startsWith(MAGIC)) throw new FormatError(file, "header", "not an RWKV state file");
    const nl = text.indexOf("\n", MAGIC.length);
    let meta: { shape?: string; values?: number };
    try {
      meta = JSON.parse(text.slice(MAGIC.length, nl));
    } catch {
      throw new FormatError(file, "header", "malformed");
    }
    if (meta.shape !== key(spec)) {
      throw new FormatError(file, "shape", `state is for ${meta.shape}, the model is ${key(spec)}`);
    }
    const n = meta.values ?? -1;
    const start = bytes.length - n * 4;
    if (n < 0 || start < nl) throw new FormatError(file, "values", "truncated");
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(start));
    return new State(spec, data);
  }

  /** Saves to a file atomically. */
  async save(path: string): Promise<void> {
    const bytes = this.toBytes();
    await writeAtomic(path, (f) => writeAll(f, bytes), true);
  }

  /** Loads a file written by {@link State.save}. */
  static async load(spec: ModelSpec, path: string): Promise<State> {
    return State.fromBytes(spec, await Deno.readFile(path), path);
  }
}
