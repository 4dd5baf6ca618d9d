/**
 * Where the server keeps states and stored responses: one small key → bytes interface with two
 * backends, {@link MemoryStore} (in this process, bounded by bytes, least recently used first
 * out, optionally spilling what it evicts to a directory) and a Redis store
 * (`store_redis.ts`) that several replicas share.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxBytes: 256 << 20 });
 * await store.set("k", new Uint8Array([1, 2]), 60);
 * console.log(await store.get("k")); // Uint8Array [1, 2]
 * ```
 * @module
 */

import type { StateStore } from "./store_types.ts";

export { type StateStore, StoreUnavailableError } from "./store_types.ts";

/**
 * Options of a {@link MemoryStore}.
 * @example
 * ```ts
 * const opts: MemoryStoreOptions = { maxBytes: 1 << 30, spillDir: "/var/cache/rwkv-states" };
 * ```
 */
export interface MemoryStoreOptions {
  /** Bytes kept in memory (default 1 GiB); the least recently used go first. */
  maxBytes?: number;
  /** Evicted entries are written here (one file each) and read back on demand. */
  spillDir?: string;
}

interface Entry {
  value: Uint8Array<ArrayBuffer>;
  expires: number; // ms since epoch, Infinity: never
}

/** File name of a key in the spill directory (keys may hold any character). */
async function spillName(key: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The embedded store: a `Map` in least-recently-used order, bounded by bytes. With `spillDir`,
 * what falls out is written there (with its expiry) instead of being lost.
 * @example
 * ```ts
 * const store = new MemoryStore({ maxBytes: 64 << 20, spillDir: "/tmp/states" });
 * ```
 */
export class MemoryStore implements StateStore {
  readonly kind = "memory";
  /** Bytes kept in memory at most. */
  readonly maxBytes: number;
  /** Where evicted entries go, if anywhere. */
  readonly spillDir?: string;
  #map = new Map<string, Entry>();
  #bytes = 0;
  #evicted = 0;

  /** An empty store. */
  constructor(options: MemoryStoreOptions = {}) {
    this.maxBytes = options.maxBytes ?? 1024 ** 3;
    if (!(this.maxBytes > 0)) throw new RangeError("maxBytes must be > 0");
    this.spillDir = options.spillDir;
    if (this.spillDir) Deno.mkdirSync(this.spillDir, { recursive: true });
  }

  async get(key: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const e = this.#map.get(key);
    if (e) {
      this.#map.delete(key);
      if (e.expires <= Date.now()) {
        this.#bytes -= e.value.length;
        return undefined;
      }
      this.#map.set(key, e); // most recently used now
      return e.value;
    }
    if (!this.spillDir) return undefined;
    const path = `${this.spillDir}/${await spillName(key)}`;
    let raw: Uint8Array;
    try {
      raw = await Deno.readFile(path);
    } catch {
      return undefined;
    }
    const expires = new DataView(raw.buffer, raw.byteOffset).getFloat64(0, true);
    await Deno.remove(path).catch(() => {});
    if (expires <= Date.now()) return undefined;
    const value = raw.slice(8);
    await this.#put(key, { value, expires });
    return value;
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    const expires = ttlSeconds && ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : Infinity;
    await this.delete(key);
    await this.#put(key, { value: value.slice(), expires });
  }

  async #put(key: string, e: Entry): Promise<void> {
    this.#map.set(key, e);
    this.#bytes += e.value.length;
    for (const [k, old] of this.#map) {
      if (this.#bytes <= this.maxBytes || k === key) break;
      this.#map.delete(k);
      this.#bytes -= old.value.length;
      this.#evicted++;
      if (this.spillDir && old.expires > Date.now()) await this.#spill(k, old);
    }
  }

  async #spill(key: string, e: Entry): Promise<void> {
    const out = new Uint8Array(8 + e.value.length);
    new DataView(out.buffer).setFloat64(0, e.expires, true);
    out.set(e.value, 8);
    const path = `${this.spillDir}/${await spillName(key)}`;
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    await Deno.writeFile(tmp, out);
    await Deno.rename(tmp, path);
  }

  async delete(key: string): Promise<boolean> {
    const e = this.#map.get(key);
    if (e) {
      this.#map.delete(key);
      this.#bytes -= e.value.length;
    }
    let spilled = false;
    if (this.spillDir) {
      spilled = await Deno.remove(`${this.spillDir}/${await spillName(key)}`).then(
        () => true,
        () => false,
      );
    }
    return (e !== undefined && e.expires > Date.now()) || spilled;
  }

  info(): Promise<Record<string, unknown>> {
    return Promise.resolve({
      kind: this.kind,
      entries: this.#map.size,
      bytes: this.#bytes,
      maxBytes: this.maxBytes,
      evicted: this.#evicted,
      ...(this.spillDir && { spillDir: this.spillDir }),
    });
  }

  close(): Promise<void> {
    this.#map.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }
}

/**
 * Opens the store a `--state-store` value names: `memory` (default) or
 * `redis://HOST:PORT/DB`.
 * @example
 * ```ts
 * const store = await openStore("redis://127.0.0.1:6379/0");
 * ```
 */
export async function openStore(
  spec: string | undefined,
  memory: MemoryStoreOptions = {},
): Promise<StateStore> {
  if (spec === undefined || spec === "memory") return new MemoryStore(memory);
  if (/^rediss?:\/\//.test(spec)) {
    const { RedisStore } = await import("./store_redis.ts");
    return await RedisStore.connect(spec);
  }
  throw new RangeError(`state store must be 'memory' or redis://HOST:PORT/DB, not '${spec}'`);
}
