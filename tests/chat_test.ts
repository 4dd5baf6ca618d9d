import { buildChatPrompt, ChatSession, normalizeMessage, runChatCommand } from "../lib/chat.ts";
import { loadModel } from "../lib/load.ts";
import { type Model, newModel } from "../lib/model/model.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { assert, assertClose, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");

/** Wraps a model to count the tokens fed to it. */
function counting(inner: Model): { model: Model; fed: number[] } {
  const fed: number[] = [];
  const model = newModel(
    {
      name: "counting",
      run: (items, every) => {
        for (const it of items) fed.push(it.tokens.length);
        return inner.forwardBatch(items, { every });
      },
      dispose: () => inner.dispose(),
    },
    inner.spec,
    inner.info,
  );
  return { model, fed };
}

Deno.test("chat: transcript text and ChatRWKV normalisation", () => {
  assertEquals(normalizeMessage("  Hi\r\n\n\nthere  "), "Hi\nthere");
  assertEquals(
    buildChatPrompt([
      { role: "system", content: "Be nice." },
      { role: "user", content: "Hi\n\n\nyou" },
      { role: "assistant", content: " Hello!" },
      { role: "user", content: "More" },
    ]),
    "System: Be nice.\n\nUser: Hi\nyou\n\nAssistant: Hello!\n\nUser: More\n\nAssistant:",
  );
});

Deno.test({
  name: "chat: state carried between turns (only new tokens fed) equals the whole transcript",
  ignore: !MODEL,
  fn: async () => {
    const inner = await loadModel(MODEL!, { backend: "reference" });
    const { model, fed } = counting(inner);
    const tok = await loadTokenizer("bytes");
    const chat = new ChatSession(model, tok, { system: "Be brief.", maxTokens: 12, seed: 3 });
    let reply1 = "";
    for await (const p of chat.send("Hello there")) reply1 += p;
    const afterTurn1 = chat.tokens.length;
    // the transcript is closed with a blank line whatever the reply was
    assert(tok.decode(chat.tokens).endsWith("\n\n"), "turn closed by a blank line");
    assert(
      tok.decode(chat.tokens).startsWith("System: Be brief.\n\nUser: Hello there\n\nAssistant:"),
    );
    assertEquals(reply1, chat.messages[2].content);

    fed.length = 0;
    const it = chat.send("  And\n\n\nthen? ");
    const first = await it.next(); // the prompt has been fed once the first piece (or end) comes
    const turn2 = "User: And\nthen?\n\nAssistant:";
    assertEquals(fed[0], turn2.length, "only the new turn's tokens are fed");
    const promptEnd = afterTurn1 + turn2.length;
    assertEquals(tok.decode(chat.tokens.slice(afterTurn1, promptEnd)), turn2);
    // the second turn's logits equal those of the whole transcript processed at once
    const whole = await inner.forward(chat.tokens.slice(0, promptEnd), inner.createState());
    assertClose(chat.lastPromptLogits!, whole, 1e-4, "turn-2 logits vs whole transcript");
    if (!first.done) { for await (const _ of it); }
    // and the state after turn 2 equals the state of the whole transcript
    const s = inner.createState();
    await inner.forward(chat.tokens, s);
    assertClose(chat.state.data, s.data, 1e-4, "state after turn 2");
    await model.dispose();
  },
});

Deno.test({
  name: "chat: /save + /load round-trip, /regen restores the state, /reset, abort",
  ignore: !MODEL,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const model = await loadModel(MODEL!, { backend: "reference" });
    try {
      const tok = await loadTokenizer("bytes");
      const chat = new ChatSession(model, tok, { maxTokens: 8, temperature: 0 });
      for await (const _ of chat.send("Hi")) { /* drain */ }
      const saved = chat.state.clone();
      const file = `${dir}/chat.state`;
      assertEquals((await runChatCommand(chat, `/save ${file}`)).kind, "message");
      let a = "";
      for await (const p of chat.send("Next")) a += p;
      const stateA = chat.state.clone();

      // /regen: greedy, so the same reply and state again from the clone before the reply
      assertEquals((await runChatCommand(chat, "/regen")).kind, "regen");
      let b = "";
      for await (const p of chat.regenerate()) b += p;
      assertEquals(b, a);
      assertEquals(chat.state.data, stateA.data);

      // /load brings back the saved state exactly; the same turn then gives the same reply
      await runChatCommand(chat, `/load ${file}`);
      assertEquals(chat.state.data, saved.data);
      let c = "";
      for await (const p of chat.send("Next")) c += p;
      assertEquals(c, a);

      await runChatCommand(chat, "/reset");
      assertEquals(chat.tokens.length, 0);
      assert(chat.state.data.every((x) => x === 0), "reset to zeros");
      assert((await runChatCommand(chat, "/help")).kind === "message");
      assertEquals(await runChatCommand(chat, "plain text"), { kind: "chat", text: "plain text" });

      // an abort before the prompt is fed leaves the conversation untouched
      const ac = new AbortController();
      ac.abort();
      const r = chat.send("ignored", { signal: ac.signal });
      const end = await r.next();
      assert(end.done && end.value.stopReason === "abort");
      assertEquals(chat.tokens.length, 0);
    } finally {
      await model.dispose();
      await cleanup();
    }
  },
});

Deno.test({
  name: "chat CLI: piped stdin lines, commands, streamed replies",
  ignore: !MODEL,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const cmd = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../cli/chat.ts", import.meta.url).pathname,
          "--model",
          MODEL!,
          "--backend",
          "reference",
          "--max-tokens",
          "6",
          "--temperature",
          "0",
          "--quiet",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      });
      const p = cmd.spawn();
      const w = p.stdin.getWriter();
      await w.write(
        new TextEncoder().encode(`Hello\n/save ${dir}/s.state\n/help\n/regen\n/quit\n`),
      );
      await w.close();
      const out = await p.output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assertEquals(text.split("Assistant: ").length, 3, text);
      assert(text.includes(`state saved to ${dir}/s.state`), text);
      assert(text.includes("/regen"), text);
      assert((await Deno.stat(`${dir}/s.state`)).size > 0);
    } finally {
      await cleanup();
    }
  },
});
