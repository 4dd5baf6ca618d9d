/**
 * States the server keeps: each stored in the binary `State` format inside a small envelope
 * naming the model it belongs to, so a state made by one model is refused by another.
 *
 * The model's identity is its shape (version, layers, width, heads, head size, vocabulary), its
 * storage dtype (q8 and f32 of the same weights give different states) and a weights hash:
 * SHA-256 over the checkpoint file's size, its first and last MiB (where every supported format
 * keeps its tensor table: the SafeTensors header, the zip central directory with `data.pkl`, the
 * rwkv.cpp header) and 64 blocks of 4 KiB sampled evenly through the file. That reads about
 * 2.3 MiB whatever the model's size, and any re-export, re-quantization or retraining changes it;
 * it is not a defence against a forged file made to collide (trust your model files).
 *
 * Envelope: `RWKVSRV1\n`, one JSON line `{"model": IDENTITY, "meta": {...}}`, then the
 * `State.toBytes()` bytes.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Model } from "../model/model.ts";
import { State } from "../model/state.ts";
import type { StateStore } from "./store.ts";

const MAGIC = "RWKVSRV1\n";
const HEAD = 1 << 20;
const SAMPLES = 64;
const SAMPLE = 4096;

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * SHA-256 of a token sequence (as little-endian int32), hex: the prefix cache's keys.
 * @example
 * ```ts
 * await tokensHash([1, 2, 3]); // "…64 hex digits…"
 * ```
 */
export async function tokensHash(tokens: readonly number[]): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", Int32Array.from(tokens)));
}

/**
 * The weights hash of a checkpoint file (see the module doc), hex; `"no-file"` when the path is
 * not a readable file.
 * @example
 * ```ts
 * await weightsHash("model.safetensors"); // "3f2a…"
 * ```
 */
export async function weightsHash(path: string): Promise<string> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path);
  } catch {
    return "no-file";
  }
  try {
    const size = (await f.stat()).size;
    const parts: Uint8Array[] = [new TextEncoder().encode(`size ${size}\n`)];
    const read = async (at: number, n: number) => {
      const buf = new Uint8Array(Math.max(0, Math.min(n, size - at)));
      await f.seek(at, Deno.SeekMode.Start);
      let o = 0;
      while (o < buf.length) {
        const r = await f.read(buf.subarray(o));
        if (r === null) break;
        o += r;
      }
      parts.push(buf.subarray(0, o));
    };
    await read(0, HEAD);
    await read(Math.max(0, size - HEAD), HEAD);
    for (let i = 0; i < SAMPLES; i++) await read(Math.floor((size * i) / SAMPLES), SAMPLE);
    const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return hex(await crypto.subtle.digest("SHA-256", all));
  } finally {
    f.close();
  }
}

/**
 * The identity a stored state records (see the module doc), e.g.
 * `rwkv7 L6 C64 H1x64 V256 f32 w:3f2a…`.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * declare const model: Model;
 * const id = await modelIdentity(model);
 * ```
 */
export async function modelIdentity(model: Model): Promise<string> {
  const i = model.info;
  const w = (await weightsHash(i.path)).slice(0, 32);
  return `rwkv${i.version} L${i.layers} C${i.embd} H${i.heads}x${i.headSize} V${i.vocab} ` +
    `${i.dtype} w:${w}`;
}

/**
 * A stored state belongs to another model (or is not a state at all).
 * @example
 * ```ts
 * declare const bank: StateBank, key: string;
 * try { await bank.load(key); } catch (e) { if (e instanceof StateMismatchError) console.log(409, e.message); }
 * ```
 */
export class StateMismatchError extends Error {
  /** `message` names both models. */
  constructor(message: string) {
    super(message);
    this.name = "StateMismatchError";
  }
}

/**
 * What a stored state says about itself besides the values (JSON).
 * @example
 * ```ts
 * const meta: StateMeta = { tokens: 120, output_tokens: [11, 12] };
 * ```
 */
export type StateMeta = Record<string, unknown>;

/**
 * Wraps a state in the envelope (see the module doc).
 * @example
 * ```ts
 * import type { State } from "../model/state.ts";
 * declare const identity: string, state: State;
 * const bytes = encodeState(identity, state, { tokens: 42 });
 * ```
 */
export function encodeState(
  identity: string,
  state: State,
  meta: StateMeta = {},
): Uint8Array<ArrayBuffer> {
  const head = new TextEncoder().encode(MAGIC + JSON.stringify({ model: identity, meta }) + "\n");
  const body = state.toBytes();
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/**
 * Reads an envelope made by {@link encodeState} for this model, or (when `allowBare`) a bare
 * `State.toBytes()` / `State.save` file of the right shape. Throws {@link StateMismatchError}
 * for another model's state or bytes that are not a state.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * declare const model: Model, identity: string, bytes: Uint8Array;
 * const { state, meta } = decodeState(model, identity, bytes);
 * ```
 */
export function decodeState(
  model: Model,
  identity: string,
  bytes: Uint8Array,
  allowBare = false,
): { state: State; meta: StateMeta } {
  const start = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  if (!start.startsWith(MAGIC)) {
    if (!allowBare) throw new StateMismatchError("not a stored state (no RWKVSRV1 envelope)");
    try {
      return { state: State.fromBytes(model.spec, bytes, "request body"), meta: {} };
    } catch (e) {
      throw new StateMismatchError((e as Error).message);
    }
  }
  const nl = start.indexOf("\n", MAGIC.length);
  let head: { model?: string; meta?: StateMeta };
  try {
    head = JSON.parse(start.slice(MAGIC.length, nl));
  } catch {
    throw new StateMismatchError("stored state: malformed envelope");
  }
  if (head.model !== identity) {
    throw new StateMismatchError(
      `the state was made by model '${head.model}', this server runs '${identity}'`,
    );
  }
  const headBytes = new TextEncoder().encode(start.slice(0, nl + 1)).length;
  try {
    return {
      state: State.fromBytes(model.spec, bytes.subarray(headBytes), "stored state"),
      meta: head.meta ?? {},
    };
  } catch (e) {
    if (e instanceof FormatError) throw new StateMismatchError(e.message);
    throw e;
  }
}

/**
 * States of one model in a {@link StateStore}.
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { State } from "../model/state.ts";
 * import type { StateStore } from "./store_types.ts";
 * declare const store: StateStore, model: Model, state: State;
 * const bank = new StateBank(store, model, await modelIdentity(model), 3600);
 * await bank.save("state:abc", state, { tokens: 10 });
 * const got = await bank.load("state:abc"); // { state, meta } or undefined
 * ```
 */
export class StateBank {
  /** Where the states go. */
  readonly store: StateStore;
  /** The model they belong to. */
  readonly model: Model;
  /** Its {@link modelIdentity}. */
  readonly identity: string;
  /** Seconds a saved state lives (0: forever). */
  readonly ttlSeconds: number;

  /** A bank over `store` for `model`, whose {@link modelIdentity} is `identity`. */
  constructor(store: StateStore, model: Model, identity: string, ttlSeconds = 0) {
    this.store = store;
    this.model = model;
    this.identity = identity;
    this.ttlSeconds = ttlSeconds;
  }

  /** Saves `state` (its values now) under `key`. */
  async save(key: string, state: State, meta: StateMeta = {}, ttlSeconds?: number): Promise<void> {
    await this.store.set(
      key,
      encodeState(this.identity, state, meta),
      ttlSeconds ?? this.ttlSeconds,
    );
  }

  /** The state under `key`, or undefined; throws {@link StateMismatchError} for another model's. */
  async load(key: string): Promise<{ state: State; meta: StateMeta } | undefined> {
    const bytes = await this.store.get(key);
    return bytes ? decodeState(this.model, this.identity, bytes) : undefined;
  }
}
