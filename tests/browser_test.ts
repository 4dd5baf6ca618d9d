/**
 * The chat page in a real headless Chromium (Debian's `chromium` at /usr/bin/chromium, driven by
 * playwright-core) against the real server: a streamed reply, the settings reaching the server,
 * stop freeing the slot, model output shown as text (never markup), fenced code blocks with a
 * copy button, conversations kept across a reload, the Responses API's stored state used when
 * the server offers it, and screenshots at 1100×700 and 390×800 (copied to the folder named by
 * RWKV_SCREENSHOTS when set: `RWKV_SCREENSHOTS=docs deno test -A tests/browser_test.ts`).
 * Skipped with a notice when Chromium is missing, unless RWKV_REQUIRE_BROWSER=1 (CI installs it).
 * @module
 */

import { CHAT_SAMPLING } from "../lib/chat.ts";
import { loadModel } from "../lib/load.ts";
import { type Model, newModel } from "../lib/model/model.ts";
import type { State } from "../lib/model/state.ts";
import { startServer } from "../lib/server/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";

const CHROMIUM = "/usr/bin/chromium";
const REQUIRE = Deno.env.get("RWKV_REQUIRE_BROWSER") === "1";
const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const SCREENSHOTS = Deno.env.get("RWKV_SCREENSHOTS");

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

/**
 * How the test's model answers: the real tiny model (`reply` null) or a scripted reply (each
 * step puts all the probability on the next byte of `reply`, then "\n\n", the chat's end of
 * turn), every forward pass taking `stepMs` first. Counts the passes and keeps the prompts.
 */
interface Control {
  reply: string | null;
  stepMs: number;
  calls: number;
  prompts: string[];
}

function testModel(inner: Model, ctl: Control): Model {
  const at = new WeakMap<State, number>(); // next byte of the reply, per sequence
  const vocab = inner.info.vocab;
  return newModel(
    {
      name: "scripted",
      run: async (items, every) => {
        ctl.calls++;
        await new Promise((r) => setTimeout(r, ctl.stepMs));
        if (ctl.reply === null) return inner.forwardBatch(items, { every });
        const script = new TextEncoder().encode(ctl.reply + "\n\n");
        return items.map(({ tokens, state }) => {
          let i = at.get(state) ?? 0;
          // one token that is the byte the script gave last continues it; anything else is a prompt
          if (tokens.length > 1 || i === 0 || tokens[0] !== script[i - 1]) {
            ctl.prompts.push(new TextDecoder().decode(Uint8Array.from(tokens)));
            i = 0;
          }
          at.set(state, i + 1);
          const logits = new Float32Array(every ? tokens.length * vocab : vocab);
          logits[logits.length - vocab + script[Math.min(i, script.length - 1)]] = 1e4;
          return logits;
        });
      },
      dispose: () => Promise.resolve(),
    },
    inner.spec,
    inner.info,
  );
}

/** Busy slots in /health: `active` today, `batch` (a count) for a batching scheduler. */
function busySlots(h: Record<string, unknown>): number {
  const n = typeof h.active === "number" ? h.active : h.batch;
  if (typeof n !== "number") throw new Error(`/health reports no slot count: ${JSON.stringify(h)}`);
  return n;
}

function pngSize(bytes: Uint8Array): [number, number] {
  assert(bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47, "PNG");
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  return [v.getUint32(16), v.getUint32(20)]; // IHDR width, height
}

const SHOWCASE = "RWKV is an RNN: each token updates a fixed-size state, so every token " +
  "costs the same however long the chat grows.\nBranch a chat by cloning its state:\n" +
  "```ts\nconst snapshot = state.clone();\n```\n" +
  "Keep `snapshot` to come back to this point later."; // under 256 bytes: the default limit

Deno.test({
  name: "browser: the chat page against the real server",
  ignore: !MODEL || !haveChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { chromium } = await import("playwright-core");
    const { dir, cleanup } = await tempDir();
    const inner = await loadModel(MODEL!, { backend: "reference" });
    const ctl: Control = { reply: null, stepMs: 15, calls: 0, prompts: [] };
    const tokenizer = await loadTokenizer("bytes");
    const server = startServer({
      model: testModel(inner, ctl),
      tokenizer,
      port: 0,
      modelName: "tiny-rwkv-7",
    });
    const health = async () => (await fetch(`${server.url}/health`)).json();
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
    type Page = Awaited<ReturnType<typeof browser.newPage>>;
    /**
     * The chat-completions path: the page's probe of `/v1/responses` answered 404, as a server
     * without the Responses API would (the server here has it; a later step uses it).
     */
    const chatOnly = (page: Page) =>
      page.route("**/v1/responses", (route) =>
        route.fulfill({
          status: 404,
          contentType: "application/json",
          body: '{"error":{"message":"not found"}}',
        }));
    /** A fresh browser context (empty localStorage) on the page, once it knows the model. */
    const open = async (
      width = 1100,
      height = 700,
      before?: (page: Page) => Promise<unknown>,
    ): Promise<Page> => {
      const context = await browser.newContext({ viewport: { width, height } });
      await context.grantPermissions(["clipboard-read", "clipboard-write"], {
        origin: server.url,
      });
      const page = await context.newPage();
      await (before ?? chatOnly)(page);
      await page.goto(server.url + "/");
      await page.waitForFunction("document.getElementById('model').textContent !== ''");
      return page;
    };
    /** Types a message, presses Enter, waits for the reply to end; returns the reply's box. */
    const say = async (page: Page, text: string) => {
      const before = await page.locator(".msg.assistant[data-done='1']").count();
      await page.fill("#input", text);
      await page.press("#input", "Enter");
      await page.waitForFunction(
        `document.querySelectorAll(".msg.assistant[data-done='1']").length > ${before}`,
      );
      return page.locator(".msg.assistant").last();
    };
    try {
      await t.step("a typed message gets a streamed reply", async () => {
        ctl.reply = null;
        const page = await open(900, 600);
        // a fixed seed and a long reply, so the test sees it grow (and does not depend on luck)
        await page.route("**/v1/chat/completions", async (route) => {
          const body = JSON.parse(route.request().postData() ?? "{}");
          await route.continue({
            postData: JSON.stringify({ ...body, seed: 7, max_tokens: 60, temperature: 0.3 }),
          });
        });
        await page.fill("#input", "Hello, who are you?");
        await page.press("#input", "Enter");
        const reply = page.locator(".msg.assistant .text").first();
        const lengths: number[] = [];
        for (let i = 0; i < 2000; i++) {
          const text = (await reply.textContent()) ?? "";
          if (lengths.at(-1) !== text.length) lengths.push(text.length);
          if (await page.locator(".msg.assistant[data-done='1']").count()) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        const final = (await reply.textContent()) ?? "";
        assert(final.length > 0, "a non-empty reply appeared");
        const growth = lengths.filter((n) => n > 0);
        assert(growth.length >= 3, `the reply grew while streaming: lengths ${lengths}`);
        for (let i = 1; i < growth.length; i++) assert(growth[i] > growth[i - 1], "only grows");
        assert(!(await reply.getAttribute("class"))!.includes("error"), "no error shown");
        const box = page.locator(".msg.assistant").first();
        const tokens = Number(await box.getAttribute("data-tokens"));
        assert(tokens > 0 && tokens <= 60, `token count shown: ${tokens}`);
        assert(Number(await box.getAttribute("data-tps")) > 0, "tokens/s shown");
        assertEquals(await page.getAttribute("#api", "data-api"), "chat", "no /v1/responses here");
        await page.context().close();
      });

      await t.step("the settings and system prompt are what the server receives", async () => {
        ctl.reply = "Bonjour! Je suis un petit modèle.";
        ctl.prompts = [];
        const page = await open();
        // the server's chat defaults are shown
        assertEquals(await page.getAttribute("#temperature", "placeholder"), "1");
        assertEquals(
          await page.getAttribute("#top_p", "placeholder"),
          String(CHAT_SAMPLING.topP),
        );
        assertEquals(
          await page.getAttribute("#presence_penalty", "placeholder"),
          String(CHAT_SAMPLING.presencePenalty),
        );
        assertEquals(
          await page.getAttribute("#frequency_penalty", "placeholder"),
          String(CHAT_SAMPLING.frequencyPenalty),
        );
        assertEquals(await page.getAttribute("#max_tokens", "placeholder"), "256");
        const bodies: Record<string, unknown>[] = [];
        page.on("request", (r) => {
          if (r.url().endsWith("/v1/chat/completions")) bodies.push(JSON.parse(r.postData()!));
        });
        await page.fill("#temperature", "0.7");
        await page.fill("#top_p", "0.5");
        await page.fill("#max_tokens", "9");
        await page.fill("#presence_penalty", "0.1");
        await page.fill("#frequency_penalty", "0.2");
        await page.fill("#system", "Answer in French.");
        const box = await say(page, "Who are you?");
        assertEquals(bodies.length, 1);
        const body = bodies[0];
        assertEquals(body.temperature, 0.7);
        assertEquals(body.top_p, 0.5);
        assertEquals(body.max_tokens, 9);
        assertEquals(body.presence_penalty, 0.1);
        assertEquals(body.frequency_penalty, 0.2);
        assertEquals(body.stream, true);
        assertEquals(body.messages, [
          { role: "system", content: "Answer in French." },
          { role: "user", content: "Who are you?" },
        ]);
        // the server acted on them: its prompt holds the system prompt, the reply stops at 9
        // (after a reply cut at max_tokens the server also feeds "\n\n", for its prefix cache)
        assert(
          ctl.prompts.some((p) => p.includes("Answer in French.")),
          JSON.stringify(ctl.prompts),
        );
        assertEquals(await box.getAttribute("data-tokens"), "9");
        assertEquals(await box.locator(".text").textContent(), "Bonjour! ");
        // settings persist across a reload
        await page.reload();
        assertEquals(await page.inputValue("#temperature"), "0.7");
        assertEquals(await page.inputValue("#system"), "Answer in French.");
        await page.context().close();
      });

      await t.step("JSON output: the switch and schema box constrain the reply", async () => {
        ctl.reply = null; // the real tiny model, held to the schema by the server's grammar
        const page = await open();
        const bodies: Record<string, unknown>[] = [];
        page.on("request", (r) => {
          if (r.url().endsWith("/v1/chat/completions")) bodies.push(JSON.parse(r.postData()!));
        });
        // (at this width the settings are beside the chat)
        assert(await page.isHidden("#schema-box"), "the schema box shows only when switched on");
        await page.check("#json");
        const schema = {
          type: "object",
          properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
          required: ["city"],
          additionalProperties: false,
        };
        await page.fill("#schema", JSON.stringify(schema));
        const box = await say(page, "Where?");
        const format = bodies[0].response_format as { json_schema: { schema: unknown } };
        assertEquals(format.json_schema.schema, schema);
        const reply = JSON.parse((await box.locator(".text").textContent())!);
        assert(["Paris", "Rome"].includes(reply.city), JSON.stringify(reply));
        await page.context().close();
      });

      await t.step("stop (Esc) cancels within one step and frees the slot", async () => {
        ctl.reply = "word ".repeat(200);
        ctl.stepMs = 80;
        const page = await open();
        await page.fill("#max_tokens", "1000");
        await page.fill("#input", "Talk for a long time.");
        await page.press("#input", "Enter");
        const text = page.locator(".msg.assistant .text").last();
        await page.waitForFunction(
          `document.querySelector(".msg.assistant .text").textContent.length >= 10`,
        );
        assertEquals(busySlots(await health()), 1, "a slot is busy while it streams");
        await page.press("#input", "Escape");
        const callsAtStop = ctl.calls;
        await page.waitForSelector(".msg.assistant[data-done='1']");
        let slots = 1;
        for (let i = 0; i < 100 && slots !== 0; i++) {
          await new Promise((r) => setTimeout(r, 50));
          slots = busySlots(await health());
        }
        assertEquals(slots, 0, "the server freed the slot");
        await new Promise((r) => setTimeout(r, 5 * ctl.stepMs));
        assert(
          ctl.calls - callsAtStop <= 1,
          `at most the step in flight runs after stop: ${ctl.calls - callsAtStop} more`,
        );
        const shown = (await text.textContent()) ?? "";
        assert(shown.length >= 10 && shown.length < 1000, `the partial reply stays: ${shown}`);
        const stats = (await page.locator(".msg.assistant .stats").last().textContent()) ?? "";
        assert(stats.includes("stopped"), stats);
        assertEquals(await page.textContent("#send"), "Send");
        ctl.stepMs = 15;
        await page.context().close();
      });

      await t.step("model output is text, fenced code renders as code and copies", async () => {
        ctl.reply = 'Careful: <script>window.__pwned = 1</script> and <img src=x onerror="' +
          'window.__pwned = 2"> stay text, <b>not bold</b>.\nUse `inline` code:\n' +
          '```js\nconst ok = 1 < 2 && "<b>";\n```\nDone.';
        const page = await open();
        const box = await say(page, "Show me markup.");
        const text = box.locator(".text");
        for (const tag of ["script", "img", "b"]) {
          assertEquals(await text.locator(tag).count(), 0, `no <${tag}> element`);
        }
        assertEquals(await page.evaluate("window.__pwned"), undefined, "nothing ran");
        const all = (await text.textContent()) ?? "";
        assert(all.includes("<script>window.__pwned = 1</script> and <img src=x onerror="), all);
        assertEquals(await text.locator("p").count(), 3, "three paragraphs around the block");
        assertEquals(await text.locator("p code").textContent(), "inline");
        const code = text.locator(".codeblock pre code");
        assertEquals(await code.count(), 1);
        assertEquals(await code.textContent(), 'const ok = 1 < 2 && "<b>";');
        assertEquals(await text.locator(".codeblock .bar span").textContent(), "js");
        await text.locator(".codeblock .copy").click();
        assertEquals(
          await page.evaluate("navigator.clipboard.readText()"),
          'const ok = 1 < 2 && "<b>";',
          "the copy button copies the code",
        );
        assertEquals(await text.locator(".codeblock .copy").textContent(), "Copied");
        await page.context().close();
      });

      await t.step("a reload keeps the conversations", async () => {
        const page = await open();
        ctl.reply = "First answer.";
        await say(page, "First chat");
        await page.click("#new");
        ctl.reply = "Second answer.";
        await say(page, "Second chat");
        await page.reload();
        await page.waitForSelector("#convs li");
        assertEquals(await page.locator("#convs li").count(), 2);
        assertEquals(await page.textContent("#convs li.current .open"), "Second chat");
        assertEquals(await page.textContent(".msg.user .text"), "Second chat");
        assertEquals(await page.textContent(".msg.assistant .text"), "Second answer.");
        await page.locator("#convs .open", { hasText: "First chat" }).click();
        assertEquals(await page.textContent(".msg.user .text"), "First chat");
        assertEquals(await page.textContent(".msg.assistant .text"), "First answer.");
        // the conversation goes on with its history (this server has no /v1/responses)
        const bodies: { messages: unknown[] }[] = [];
        page.on("request", (r) => {
          if (r.url().endsWith("/v1/chat/completions")) bodies.push(JSON.parse(r.postData()!));
        });
        ctl.reply = "Third answer.";
        await say(page, "And then?");
        assertEquals(bodies[0].messages, [
          { role: "user", content: "First chat" },
          { role: "assistant", content: "First answer." },
          { role: "user", content: "And then?" },
        ]);
        await page.locator("#convs li", { hasText: "Second chat" }).locator(".del").click();
        await page.reload();
        await page.waitForSelector("#convs li");
        assertEquals(await page.locator("#convs li").count(), 1, "a deleted one stays deleted");
        await page.context().close();
      });

      await t.step("against the real server's /v1/responses, only new turns are sent", async () => {
        ctl.reply = "Bonjour.";
        ctl.prompts = [];
        const sent: Record<string, unknown>[] = [];
        const page = await open(1100, 700, async () => {});
        page.on("request", (r) => {
          if (r.url().endsWith("/v1/responses") && r.method() === "POST") {
            const body = JSON.parse(r.postData() ?? "{}");
            if (body.input !== undefined) sent.push(body);
          }
        });
        const first = await say(page, "Hello");
        assertEquals(await page.getAttribute("#api", "data-api"), "responses");
        assertEquals(await first.locator(".text").textContent(), "Bonjour.");
        const second = await say(page, "And you?");
        assertEquals(await second.locator(".text").textContent(), "Bonjour.");
        assertEquals(sent.length, 2);
        assertEquals(sent[1].input, "And you?", "only the new message is sent");
        assert(typeof sent[1].previous_response_id === "string", "continues the stored state");
        // the model was fed the first turn's transcript, then only the second turn's text
        assert(ctl.prompts[0].includes("Hello"), `first prompt ${ctl.prompts[0]}`);
        const last = ctl.prompts.findLast((p) => p.includes("And you?"))!;
        assert(last !== undefined && !last.includes("Hello"), JSON.stringify(ctl.prompts));
        await page.context().close();
      });

      await t.step("with /v1/responses the page continues from the stored state", async () => {
        // The browser stands in for a Responses server with the OpenAI
        // event shapes (created, output_text.delta, completed), to check the page's side of it.
        const sent: Record<string, unknown>[] = [];
        let forget = false; // answer continuations with 404, as after a server restart
        const page = await open(
          1100,
          700,
          (page) =>
            page.route("**/v1/responses", async (route) => {
              const body = JSON.parse(route.request().postData() ?? "{}");
              if (body.input === undefined) {
                return route.fulfill({
                  status: 400,
                  contentType: "application/json",
                  body: '{"error":{"message":"\'input\' is required"}}',
                });
              }
              sent.push(body);
              if (forget && body.previous_response_id) {
                return route.fulfill({
                  status: 404,
                  contentType: "application/json",
                  body: '{"error":{"message":"no such response"}}',
                });
              }
              const id = `resp_${sent.length}`;
              const ev = (type: string, o: object) =>
                `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`;
              await route.fulfill({
                status: 200,
                contentType: "text/event-stream",
                body: ev("response.created", { response: { id, status: "in_progress" } }) +
                  ev("response.output_text.delta", { delta: `Reply ${sent.length}, ` }) +
                  ev("response.output_text.delta", { delta: "from the stored state." }) +
                  ev("response.completed", {
                    response: { id, status: "completed", usage: { output_tokens: 6 } },
                  }),
              });
            }),
        );
        const chats: { messages: unknown[] }[] = [];
        page.on("request", (r) => {
          if (r.url().endsWith("/v1/chat/completions")) chats.push(JSON.parse(r.postData()!));
        });
        await page.fill("#system", "Be brief.");
        await page.fill("#temperature", "0.8");
        await page.fill("#max_tokens", "40");
        const first = await say(page, "Hello");
        assertEquals(await page.getAttribute("#api", "data-api"), "responses");
        assertEquals(await first.locator(".text").textContent(), "Reply 1, from the stored state.");
        assertEquals(await first.getAttribute("data-tokens"), "6");
        await say(page, "And more?");
        assertEquals(sent[0].input, "Hello");
        assertEquals(sent[0].instructions, "Be brief.");
        assertEquals(sent[0].store, true);
        assertEquals(sent[0].temperature, 0.8);
        assertEquals(sent[0].max_output_tokens, 40);
        assertEquals(sent[0].previous_response_id, undefined);
        assertEquals(sent[1].input, "And more?", "only the new message is sent");
        assertEquals(sent[1].previous_response_id, "resp_1");
        assertEquals(sent[1].instructions, undefined, "the stored state has the system prompt");
        assertEquals(chats.length, 0, "no history resent");
        // the id survives a reload; a server that lost it gets the whole history instead
        await page.reload();
        forget = true;
        ctl.reply = "Fine.";
        const third = await say(page, "Still there?");
        assertEquals(sent.at(-1)!.previous_response_id, "resp_2");
        assertEquals(chats.length, 1);
        assertEquals(chats[0].messages, [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hello" },
          { role: "assistant", content: "Reply 1, from the stored state." },
          { role: "user", content: "And more?" },
          { role: "assistant", content: "Reply 2, from the stored state." },
          { role: "user", content: "Still there?" },
        ]);
        assertEquals(await third.locator(".text").textContent(), "Fine.");
        // with no stored state left, the next turn sends the history once to get one again
        forget = false;
        await say(page, "Once more");
        assertEquals(sent.at(-1)!.previous_response_id, undefined);
        assertEquals(sent.at(-1)!.instructions, undefined, "the system prompt is in the input");
        assertEquals(sent.at(-1)!.input, [
          ...chats[0].messages,
          { role: "assistant", content: "Fine." },
          { role: "user", content: "Once more" },
        ]);
        await say(page, "Last one");
        assertEquals(sent.at(-1)!.input, "Last one");
        assertEquals(sent.at(-1)!.previous_response_id, `resp_${sent.length - 1}`);
        assertEquals(chats.length, 1, "no history resent since");
        await page.context().close();
      });

      await t.step("screenshots at 1100×700 and 390×800", async () => {
        for (const [name, width, height] of [["wide", 1100, 700], ["phone", 390, 800]] as const) {
          ctl.reply = "Hello! I am a small RWKV model served from Deno.";
          const page = await open(width, height);
          if (width > 1000) {
            await page.fill("#system", "You are a helpful assistant.");
            await page.fill("#temperature", "0.8");
          }
          await say(page, "Hi! What are you?");
          ctl.reply = SHOWCASE;
          await say(page, "How do I branch a conversation?");
          await page.locator("#input").blur();
          const png = `${dir}/chat-${name}.png`;
          await page.screenshot({ path: png });
          const bytes = await Deno.readFile(png);
          assertEquals(pngSize(bytes), [width, height]);
          assert(bytes.length > 5000, `a real picture: ${bytes.length} bytes`);
          if (SCREENSHOTS) await Deno.copyFile(png, `${SCREENSHOTS}/chat-${name}.png`);
          await page.context().close();
        }
      });
    } finally {
      await browser.close();
      await server.shutdown();
      await inner.dispose();
      await cleanup();
    }
  },
});
