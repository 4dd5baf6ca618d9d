/**
 * The interface of the server's state stores (`store.ts` in memory, `store_redis.ts` in Redis)
 * and the error they throw when their backend is unreachable.
 * @module
 */

/**
 * The store cannot be reached (Redis down, restarting): the request gets a 503 and may be
 * retried; the store reconnects by itself.
 * @example
 * ```ts
 * declare const store: StateStore, key: string;
 * try { await store.get(key); } catch (e) { if (e instanceof StoreUnavailableError) console.log(503, e.message); }
 * ```
 */
export class StoreUnavailableError extends Error {
  /** `message` says which store and why. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * Key → bytes with an optional time to live. Implementations throw
 * {@link StoreUnavailableError} when their backend is unreachable.
 * @example
 * ```ts
 * async function copy(a: StateStore, b: StateStore, key: string) {
 *   const v = await a.get(key);
 *   if (v) await b.set(key, v);
 * }
 * ```
 */
export interface StateStore {
  /** `memory` or `redis`, for `/health`. */
  readonly kind: string;
  /** The value, or undefined when absent or expired. */
  get(key: string): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /** Stores `value`; `ttlSeconds` > 0 makes it expire (default: never). */
  set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void>;
  /** Removes the key; true when it existed. */
  delete(key: string): Promise<boolean>;
  /** Figures for `/health` (entries, bytes, …). */
  info(): Promise<Record<string, unknown>>;
  /** Releases connections and files. */
  close(): Promise<void>;
}
