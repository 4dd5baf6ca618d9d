import { createHash } from "node:crypto";
import { cacheDir, DownloadError, remoteOf, resolveModel } from "../lib/fetch.ts";
import { loadModel } from "../lib/load.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

interface Hit {
  method: string;
  path: string;
  range: string | null;
}

/** Serves `bytes` at any path with Range support; `interruptNext` cuts the next GET halfway. */
function fileServer(bytes: Uint8Array<ArrayBuffer>, etag: string) {
  const hits: Hit[] = [];
  const ctl = { interruptNext: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    hits.push({ method: req.method, path, range });
    const headers = { etag: `"${etag}"`, "accept-ranges": "bytes" };
    if (req.method === "HEAD") {
      return new Response(null, { headers: { ...headers, "content-length": `${bytes.length}` } });
    }
    let start = 0;
    let status = 200;
    const extra: Record<string, string> = {};
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      if (start >= bytes.length) return new Response(null, { status: 416 });
      status = 206;
      extra["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    }
    const body = bytes.subarray(start);
    if (ctl.interruptNext) {
      ctl.interruptNext = false;
      const half = body.subarray(0, Math.floor(body.length / 2));
      const stream = new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(half);
          await new Promise((r) => setTimeout(r, 50));
          c.error(new Error("connection dropped"));
        },
      });
      return new Response(stream, { status, headers: { ...headers, ...extra } });
    }
    return new Response(body, { status, headers: { ...headers, ...extra } });
  });
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return { server, url, hits, ctl };
}

Deno.test("fetch: specs map to URLs and cache paths; local paths pass through", async () => {
  assertEquals(remoteOf("hf:BlinkDL/rwkv-7-world/RWKV-x070-World-0.1B.pth"), {
    url: "https://huggingface.co/BlinkDL/rwkv-7-world/resolve/main/RWKV-x070-World-0.1B.pth",
    relPath: "hf/BlinkDL/rwkv-7-world/main/RWKV-x070-World-0.1B.pth",
  });
  assertEquals(
    remoteOf("hf:o/r@v2/sub/f.pth")?.url,
    "https://huggingface.co/o/r/resolve/v2/sub/f.pth",
  );
  assertEquals(
    remoteOf("https://example.com:8443/a/b.pth")?.relPath,
    "url/example.com_8443/a/b.pth",
  );
  assertEquals(remoteOf("models/x.pth"), undefined);
  assertEquals(await resolveModel("models/x.pth"), "models/x.pth");
  let bad = false;
  try {
    remoteOf("hf:o/r/../x");
  } catch {
    bad = true;
  }
  assert(bad, "path traversal refused");
  const prev = Deno.env.get("RWKV_CACHE");
  Deno.env.set("RWKV_CACHE", "/tmp/some-cache");
  assertEquals(cacheDir(), "/tmp/some-cache");
  if (prev === undefined) Deno.env.delete("RWKV_CACHE");
  else Deno.env.set("RWKV_CACHE", prev);
});

Deno.test({
  name: "fetch: download with etag sha256, resume after an interruption, bad checksum, loadModel",
  ignore: !MODEL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const bytes = await Deno.readFile(MODEL!);
    const sha = createHash("sha256").update(bytes).digest("hex");
    const { server, url, hits, ctl } = fileServer(bytes, sha);
    const { dir, cleanup } = await tempDir();
    const opts = { cacheDir: dir, quiet: true };
    try {
      // 1. whole download, checked against the etag's sha256, then served from the cache
      const p1 = await resolveModel(`${url}/m/a.safetensors`, opts);
      assert(p1.startsWith(dir) && p1.endsWith("/m/a.safetensors"), p1);
      assertEquals(await Deno.readFile(p1), bytes);
      const n = hits.length;
      assertEquals(await resolveModel(`${url}/m/a.safetensors`, opts), p1);
      assertEquals(hits.length, n, "cached: no request");

      // 2. interrupted halfway: a .part stays; the next call resumes with a Range request
      ctl.interruptNext = true;
      const spec = `${url}/m/b.safetensors`;
      const err = await assertRejects(() => resolveModel(spec, opts), DownloadError);
      assert(err.message.includes("resume"), err.message);
      const dest = `${dir}/${remoteOf(spec)!.relPath}`;
      const partSize = (await Deno.stat(`${dest}.part`)).size;
      assert(partSize > 0 && partSize < bytes.length, `partial ${partSize}`);
      let progressed = 0;
      const p2 = await resolveModel(spec, { ...opts, onProgress: (d) => progressed = d });
      assertEquals(hits.at(-1)!.range, `bytes=${partSize}-`, "resumed from the part");
      assertEquals(progressed, bytes.length);
      assertEquals(await Deno.readFile(p2), bytes);
      let partLeft = true;
      await Deno.stat(`${dest}.part`).catch(() => partLeft = false);
      assert(!partLeft, "the .part was renamed into place");

      // 3. a wrong caller-supplied checksum: refused, nothing left behind
      const spec3 = `${url}/m/c.safetensors`;
      const bad = await assertRejects(
        () => resolveModel(spec3, { ...opts, sha256: "0".repeat(64) }),
        DownloadError,
      );
      assert(bad.message.includes("sha256 mismatch"), bad.message);
      const dest3 = `${dir}/${remoteOf(spec3)!.relPath}`;
      for (const p of [dest3, `${dest3}.part`]) {
        let exists = true;
        await Deno.stat(p).catch(() => exists = false);
        assert(!exists, `${p} removed`);
      }

      // 4. loadModel takes the URL directly
      const model = await loadModel(`${url}/m/d.safetensors`, {
        backend: "reference",
        download: opts,
      });
      assertEquals(model.info.version, "7");
      await model.dispose();
    } finally {
      await server.shutdown();
      await cleanup();
    }
  },
});
