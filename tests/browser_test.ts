/**
 * The chat page in a real headless Chromium (Debian's `chromium` at /usr/bin/chromium):
 * type a message, watch the streamed reply grow, take a screenshot. Skipped with a notice
 * when Chromium is missing, unless RWKV_REQUIRE_BROWSER=1 (CI installs it).
 * @module
 */

import { loadModel } from "../lib/load.ts";
import { newModel } from "../lib/model/model.ts";
import { startServer } from "../lib/server/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert } from "./_assert.ts";
import { fixture, tempDir } from "./_fixtures.ts";

const CHROMIUM = "/usr/bin/chromium";
const REQUIRE = Deno.env.get("RWKV_REQUIRE_BROWSER") === "1";
const MODEL = fixture("tiny-rwkv-7v0.safetensors");

function haveChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    if (REQUIRE) throw new Error(`${CHROMIUM} is missing and RWKV_REQUIRE_BROWSER=1`);
    console.error(
      `NOTICE: ${CHROMIUM} is missing; the browser test is skipped ` +
        `(apt-get install -y chromium, or set RWKV_REQUIRE_BROWSER=1 to make this fail)`,
    );
    return false;
  }
}

Deno.test({
  name: "browser: the chat page streams a reply from /v1/chat/completions",
  ignore: !MODEL || !haveChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { chromium } = await import("npm:playwright-core@1.65.1");
    const { dir, cleanup } = await tempDir();
    const inner = await loadModel(MODEL!, { engine: "reference" });
    // 15 ms a token, so the reply visibly streams
    const model = newModel(
      {
        name: "delayed",
        run: async (items, every) => {
          await new Promise((r) => setTimeout(r, 15));
          return inner.forwardBatch(items, { every });
        },
        dispose: () => Promise.resolve(),
      },
      inner.spec,
      inner.info,
    );
    const tokenizer = await loadTokenizer("bytes");
    const server = startServer({ model, tokenizer, port: 0, modelName: "tiny-rwkv-7" });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
      // a fixed seed and a long reply, so the test sees it grow (and does not depend on luck)
      await page.route("**/v1/chat/completions", async (route) => {
        const body = JSON.parse(route.request().postData() ?? "{}");
        await route.continue({
          postData: JSON.stringify({ ...body, seed: 7, max_tokens: 60, temperature: 0.3 }),
        });
      });
      await page.goto(server.url + "/");
      await page.waitForFunction("document.getElementById('model').textContent !== ''");
      await page.fill("#input", "Hello, who are you?");
      await page.press("#input", "Enter");
      const reply = page.locator(".msg.assistant .text").first();
      const lengths: number[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        const text = (await reply.textContent()) ?? "";
        if (lengths.at(-1) !== text.length) lengths.push(text.length);
        const done = await page.locator(".msg.assistant[data-done='1']").count();
        if (done) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const final = (await reply.textContent()) ?? "";
      assert(final.length > 0, "a non-empty reply appeared");
      const growth = lengths.filter((n) => n > 0);
      assert(growth.length >= 3, `the reply grew while streaming: lengths ${lengths}`);
      for (let i = 1; i < growth.length; i++) assert(growth[i] > growth[i - 1], "only grows");
      assert(!(await reply.getAttribute("class"))!.includes("error"), "no error shown");
      const png = `${dir}/chat.png`;
      await page.screenshot({ path: png });
      const bytes = await Deno.readFile(png);
      assert(bytes.length > 1000, "screenshot written");
      assert(
        bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47,
        "PNG",
      );
      if (Deno.env.get("RWKV_KEEP_SCREENSHOT")) {
        await Deno.copyFile(png, Deno.env.get("RWKV_KEEP_SCREENSHOT")!);
      }
    } finally {
      await browser.close();
      await server.shutdown();
      await inner.dispose();
      await cleanup();
    }
  },
});
