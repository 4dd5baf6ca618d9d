/**
 * Real services the server tests start and stop themselves on loopback ports: `redis-server`
 * and HAProxy (Debian's packages; `.ci/run` installs them). Missing binaries skip the tests with
 * a visible notice, or fail them when `RWKV_REQUIRE_SERVICES=1` (as CI sets).
 * @module
 */

const REQUIRE = Deno.env.get("RWKV_REQUIRE_SERVICES") === "1";

/** The path of `name` on PATH (or in /usr/sbin), or undefined with a notice. */
export function binary(name: string): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/bin"];
  for (const d of dirs) {
    try {
      if (Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch { /* not here */ }
  }
  if (REQUIRE) throw new Error(`${name} is missing and RWKV_REQUIRE_SERVICES=1`);
  console.error(`NOTICE: ${name} is missing; tests that need it are skipped (apt-get install it)`);
  return undefined;
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Reads `child`'s stdout until a line matches `re` (bounded by the stream's end). */
async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  re: RegExp,
): Promise<{ line: string; rest: ReadableStreamDefaultReader<string> }> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const r = await reader.read();
    if (r.done) throw new Error(`process ended before printing ${re}: ${text}`);
    text += r.value;
    const m = text.split("\n").find((l) => re.test(l));
    if (m) {
      // keep draining so the child never blocks on a full pipe
      (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
      })();
      return { line: m, rest: reader };
    }
  }
}

/**
 * A `redis-server` on 127.0.0.1, no persistence.
 * @example
 * ```ts ignore
 * const redis = await startRedis(path);
 * console.log(redis.url); await redis.stop();
 * ```
 */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** Stops it (SIGTERM) and waits. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  start(): Promise<void>;
}

/**
 * Starts `redis-server` (path from {@link binary}) on a free loopback port; with `persistDir`,
 * every write is appended to a file there first (so a restart keeps the data).
 */
export async function startRedis(bin: string, persistDir?: string): Promise<RedisProcess> {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command(bin, {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        ...(persistDir
          ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", persistDir]
          : ["--appendonly", "no"]),
        "--daemonize",
        "no",
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    await waitForLine(child.stdout, /Ready to accept connections/);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    start,
    async stop() {
      if (!child) return;
      child.kill("SIGTERM");
      await child.status;
      child = undefined;
    },
  };
}

/**
 * Starts `deno run -A cli/serve.ts ARGS` and resolves once it prints its address.
 * @example
 * ```ts ignore
 * const s = await startServe(["--model", m, "--port", "0"]); await s.stop();
 * ```
 */
export async function startServe(
  args: string[],
): Promise<{ url: string; child: Deno.ChildProcess; stop: () => Promise<void> }> {
  const cli = new URL("../cli/serve.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const { line } = await waitForLine(child.stdout, /^listening on /);
  const url = /listening on (http:\/\/\S+?)\//.exec(line)![1];
  let stopped = false;
  return {
    url,
    child,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

/**
 * Starts HAProxy with `deploy/haproxy.cfg` in front of `replicas` (host:port each), listening
 * on a free loopback port; resolves once it answers.
 * @example
 * ```ts ignore
 * const lb = await startHaproxy(bin, ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]);
 * await lb.stop();
 * ```
 */
export async function startHaproxy(
  bin: string,
  replicas: readonly string[],
): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = freePort();
  const cfg = new URL("../deploy/haproxy.cfg", import.meta.url).pathname;
  const env: Record<string, string> = { RWKV_LB_BIND: `127.0.0.1:${port}` };
  replicas.forEach((r, i) => env[`RWKV_REPLICA_${i + 1}`] = r);
  const child = new Deno.Command(bin, {
    args: ["-f", cfg, "-db"],
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
  };
  for (let i = 0; i < 400; i++) {
    const ok = await fetch(`${url}/health`).then(async (r) => {
      await r.body?.cancel();
      return r.status === 200;
    }, () => false);
    if (ok) return { url, stop };
    await new Promise((r) => setTimeout(r, 25));
  }
  await stop();
  throw new Error("haproxy did not start answering");
}
