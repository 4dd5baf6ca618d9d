/**
 * Model files from the web: `hf:OWNER/REPO/FILE` (Hugging Face) or an `https://` URL is
 * downloaded once into a cache folder, with a progress bar, resumed after an interruption
 * (HTTP Range on a `.part` file), checked against a sha256 when one is known, and renamed
 * into place only when complete. Local paths pass through unchanged.
 * @module
 */

import { createHash } from "node:crypto";
import { RwkvError, UsageError } from "./errors.ts";
import { progressBar } from "./progress.ts";

/**
 * A download failed or its bytes do not match the expected checksum.
 * @example
 * ```ts
 * try { await resolveModel("hf:BlinkDL/rwkv-7-world/x.pth"); } catch (e) { if (e instanceof DownloadError) console.error(e.url); }
 * ```
 */
export class DownloadError extends RwkvError {
  /** What was being downloaded. */
  readonly url: string;
  constructor(url: string, message: string, options?: ErrorOptions) {
    super(`${url}: ${message}`, options);
    this.name = "DownloadError";
    this.url = url;
  }
}

/**
 * Options of {@link resolveModel} and {@link download}.
 * @example
 * ```ts
 * const opts: ResolveOptions = { cacheDir: "/tmp/models", sha256: "ab12…", quiet: true };
 * ```
 */
export interface ResolveOptions {
  /** The cache folder (default {@link cacheDir}). */
  cacheDir?: string;
  /** Expected sha256 (hex) of the file; else taken from the server's etag when it is one. */
  sha256?: string;
  /** No progress bar. */
  quiet?: boolean;
  /** Progress in bytes (also when quiet). */
  onProgress?: (done: number, total: number) => void;
  /** Cancels the download (the `.part` file stays, to be resumed). */
  signal?: AbortSignal;
  /** The fetch to use (tests). */
  fetch?: typeof fetch;
}

/**
 * The cache folder: `$RWKV_CACHE`, else the platform's cache folder + `rwkv-deno`
 * (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
 * Windows).
 * @example
 * ```ts
 * cacheDir(); // "/home/me/.cache/rwkv-deno"
 * ```
 */
export function cacheDir(): string {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined;
    }
  };
  const own = env("RWKV_CACHE");
  if (own) return own;
  const home = env("HOME") ?? env("USERPROFILE") ?? ".";
  switch (Deno.build.os) {
    case "darwin":
      return `${home}/Library/Caches/rwkv-deno`;
    case "windows":
      return `${env("LOCALAPPDATA") ?? `${home}\\AppData\\Local`}\\rwkv-deno`;
    default:
      return `${env("XDG_CACHE_HOME") ?? `${home}/.cache`}/rwkv-deno`;
  }
}

/**
 * The URL and cache-relative path of a remote spec, or undefined for a local path.
 * `hf:OWNER/REPO/FILE` → `https://huggingface.co/OWNER/REPO/resolve/main/FILE` (FILE may
 * contain folders; `hf:OWNER/REPO@REV/FILE` picks a revision).
 * @example
 * ```ts
 * remoteOf("hf:BlinkDL/rwkv-7-world/RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth");
 * ```
 */
export function remoteOf(spec: string): { url: string; relPath: string } | undefined {
  if (spec.startsWith("hf:")) {
    const m = /^hf:([^/\s]+)\/([^/@\s]+)(?:@([^/\s]+))?\/(.+)$/.exec(spec);
    if (!m || m[4].split("/").some((p) => p === ".." || p === "." || p === "")) {
      throw new UsageError(`${spec}: expected hf:OWNER/REPO/FILE`);
    }
    const [, owner, repo, rev = "main", file] = m;
    return {
      url: `https://huggingface.co/${owner}/${repo}/resolve/${rev}/${file}`,
      relPath: ["hf", owner, repo, rev, ...file.split("/")].join("/"),
    };
  }
  if (/^https?:\/\//i.test(spec)) {
    const u = new URL(spec);
    const parts = decodeURIComponent(u.pathname).split("/").filter((p) =>
      p && p !== "." && p !== ".."
    );
    if (parts.length === 0) throw new UsageError(`${spec}: the URL names no file`);
    const host = u.port ? `${u.hostname}_${u.port}` : u.hostname;
    return { url: u.href, relPath: ["url", host, ...parts].join("/").replace(/[:*?"<>|]/g, "_") };
  }
  return undefined;
}

/**
 * A local path for a model spec: local paths (and `file:` URLs) are returned unchanged;
 * `hf:OWNER/REPO/FILE` and `https://` URLs are downloaded into the cache first (once).
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const path = await resolveModel("hf:BlinkDL/rwkv-7-world/RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth");
 * const model = await loadModel(path);
 * ```
 */
export async function resolveModel(spec: string, options: ResolveOptions = {}): Promise<string> {
  const remote = remoteOf(spec);
  if (!remote) return spec;
  const dest = `${options.cacheDir ?? cacheDir()}/${remote.relPath}`;
  try {
    if ((await Deno.stat(dest)).isFile) return dest;
  } catch { /* not cached yet */ }
  await download(remote.url, dest, options);
  return dest;
}

const SHA256 = /^[0-9a-f]{64}$/;

function shaFromEtag(h: Headers): string | undefined {
  for (const name of ["x-linked-etag", "etag"]) {
    const v = h.get(name)?.replace(/^W\//, "").replace(/"/g, "").toLowerCase();
    if (v && SHA256.test(v)) return v;
  }
  return undefined;
}

/**
 * Downloads `url` to `dest`: into `dest.part` (resumed with a Range request when it exists),
 * verified, then renamed to `dest`. Returns the sha256 of the file.
 * @example
 * ```ts
 * await download("https://example.com/model.pth", "/tmp/model.pth", { sha256: "…" });
 * ```
 */
export async function download(
  url: string,
  dest: string,
  options: ResolveOptions = {},
): Promise<string> {
  const doFetch = options.fetch ?? fetch;
  const part = `${dest}.part`;
  await Deno.mkdir(dest.slice(0, Math.max(0, dest.lastIndexOf("/"))) || ".", { recursive: true });
  let expected = options.sha256?.toLowerCase();
  if (expected !== undefined && !SHA256.test(expected)) {
    throw new UsageError(`sha256 must be 64 hex digits, not ${options.sha256}`);
  }
  // Hugging Face tells the LFS file's sha256 in x-linked-etag on the redirect, which a
  // followed fetch hides: ask once without following.
  if (!expected) {
    try {
      const head = await doFetch(url, {
        method: "HEAD",
        redirect: "manual",
        signal: options.signal,
      });
      await head.body?.cancel();
      expected = shaFromEtag(head.headers);
    } catch (e) {
      if (options.signal?.aborted) throw e;
      /* a HEAD failing is no reason not to try the GET */
    }
  }

  let have = 0;
  try {
    have = (await Deno.stat(part)).size;
  } catch { /* fresh start */ }
  const hash = createHash("sha256");
  let res: Response;
  try {
    res = await doFetch(url, {
      headers: have > 0 ? { Range: `bytes=${have}-` } : {},
      signal: options.signal,
    });
  } catch (e) {
    if (options.signal?.aborted) throw e;
    throw new DownloadError(url, `cannot download (${(e as Error).message})`, { cause: e });
  }
  expected ??= shaFromEtag(res.headers);
  if (res.status === 416 && have > 0) {
    // the part is already whole (the server has nothing past it)
    await res.body?.cancel();
  } else if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new DownloadError(url, `HTTP ${res.status} ${res.statusText}`);
  }
  const resumed = res.status === 206;
  if (res.status === 200) have = 0; // the server ignored the Range: start over
  let total = 0;
  if (resumed) {
    const m = /\/(\d+)\s*$/.exec(res.headers.get("content-range") ?? "");
    total = m ? Number(m[1]) : have + Number(res.headers.get("content-length") ?? 0);
  } else if (res.status === 200) total = Number(res.headers.get("content-length") ?? 0);
  else total = have;

  // Hash what is already there (resume), then append.
  if (have > 0) {
    const f = await Deno.open(part, { read: true });
    try {
      for await (const chunk of f.readable) hash.update(chunk);
    } catch (e) {
      throw new DownloadError(url, `cannot read ${part} (${(e as Error).message})`);
    }
  }
  const bar = progressBar(`downloading ${url.split("/").pop()}`, "bytes", options.quiet);
  let done = have;
  if (res.status === 200 || resumed) {
    const f = await Deno.open(part, {
      write: true,
      create: true,
      append: resumed,
      truncate: !resumed,
    });
    try {
      const reader = res.body!.getReader();
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        let off = 0;
        while (off < value.length) off += await f.write(value.subarray(off));
        hash.update(value);
        done += value.length;
        bar.update(done, total);
        options.onProgress?.(done, total);
      }
    } catch (e) {
      if (options.signal?.aborted) throw e;
      throw new DownloadError(
        url,
        `interrupted after ${done} bytes (${(e as Error).message}); run again to resume`,
        { cause: e },
      );
    } finally {
      f.close();
    }
  }
  if (total > 0 && done !== total) {
    throw new DownloadError(url, `got ${done} of ${total} bytes; run again to resume`);
  }
  const sha = hash.digest("hex");
  if (expected && sha !== expected) {
    await Deno.remove(part).catch(() => {});
    throw new DownloadError(
      url,
      `sha256 mismatch: expected ${expected}, got ${sha} (file removed)`,
    );
  }
  await Deno.rename(part, dest);
  bar.finish(`${done} bytes${expected ? ", sha256 verified" : ""}`);
  return sha;
}
