/**
 * The Redis backend of the state store, through `ioredis` (pinned; it runs on Deno's Node
 * compatibility). Commands fail fast while Redis is unreachable (no offline queue, no retries
 * of a failed command), so a request gets a clear 503 instead of hanging; the client keeps
 * reconnecting in the background and the service recovers by itself.
 *
 * @example
 * ```ts
 * const store = await RedisStore.connect("redis://127.0.0.1:6379/0");
 * await store.set("k", new Uint8Array([1]), 60);
 * await store.close();
 * ```
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "npm:ioredis@5.11.1";
import { type StateStore, StoreUnavailableError } from "./store_types.ts";

/**
 * A {@link StateStore} in Redis: values are plain binary strings, TTLs Redis expiries.
 * @example
 * ```ts
 * const store = await RedisStore.connect("redis://127.0.0.1:6379/0", { prefix: "rwkv:" });
 * ```
 */
export class RedisStore implements StateStore {
  readonly kind = "redis";
  readonly url: string;
  readonly #redis: Redis;
  readonly #prefix: string;
  #lastError = "";

  private constructor(url: string, redis: Redis, prefix: string) {
    this.url = url;
    this.#redis = redis;
    this.#prefix = prefix;
    redis.on("error", (e: Error) => {
      // reconnection is automatic; remember why for /health, do not crash
      this.#lastError = e.message;
    });
  }

  /**
   * Connects to `redis://[:PASSWORD@]HOST:PORT/DB`; rejects when it cannot be reached now.
   * Keys are prefixed with `prefix` (default `rwkv:`).
   */
  static async connect(url: string, options: { prefix?: string } = {}): Promise<RedisStore> {
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: 5000,
      retryStrategy: (times: number) => Math.min(50 * times, 500),
    });
    const store = new RedisStore(url, redis, options.prefix ?? "rwkv:");
    try {
      await redis.connect();
    } catch (e) {
      redis.disconnect();
      throw new StoreUnavailableError(`cannot reach Redis at ${url} (${(e as Error).message})`, {
        cause: e,
      });
    }
    return store;
  }

  async #run<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new StoreUnavailableError(
        `state store ${this.url} is unavailable: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  get(key: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    return this.#run(async () => {
      const v = await this.#redis.getBuffer(this.#prefix + key);
      return v ? new Uint8Array(v) : undefined;
    });
  }

  set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    return this.#run(async () => {
      const buf = Buffer.from(value.buffer, value.byteOffset, value.length);
      if (ttlSeconds && ttlSeconds > 0) {
        await this.#redis.set(this.#prefix + key, buf, "PX", Math.round(ttlSeconds * 1000));
      } else await this.#redis.set(this.#prefix + key, buf);
    });
  }

  delete(key: string): Promise<boolean> {
    return this.#run(async () => (await this.#redis.del(this.#prefix + key)) > 0);
  }

  async info(): Promise<Record<string, unknown>> {
    const base = { kind: this.kind, url: this.url.replace(/\/\/[^@/]*@/, "//***@") };
    try {
      const mem = await this.#redis.info("memory");
      const keys = await this.#redis.dbsize();
      const used = /used_memory:(\d+)/.exec(mem)?.[1];
      return { ...base, status: "ok", keys, usedMemoryBytes: used ? Number(used) : undefined };
    } catch (e) {
      return { ...base, status: "unavailable", error: (e as Error).message || this.#lastError };
    }
  }

  async close(): Promise<void> {
    try {
      await this.#redis.quit();
    } catch {
      this.#redis.disconnect();
    }
  }
}
