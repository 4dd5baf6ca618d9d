/**
 * `cli/generate.ts` end to end on fixture models.
 */
import { goldens } from "./_golden.ts";
import { fixture } from "../testing/fixtures.ts";
import { assert, assertEquals } from "./_assert.ts";

const cli = new URL("../cli/generate.ts", import.meta.url).pathname;

async function run(args: string[], stdin?: string) {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: stdin === undefined ? "null" : "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await p.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

for (const g of goldens().filter((g) => /^ref-(4v0|7v0)\.json$/.test(g.file))) {
  Deno.test(`generate CLI: greedy continuation of ${g.file} starts with the official argmax`, async () => {
    const r = await run([
      "--model",
      fixture(g.model)!,
      "--prompt",
      new TextDecoder().decode(Uint8Array.from(g.tokens_B)),
      "--temperature",
      "0",
      "--max-tokens",
      "4",
      "--quiet",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const first = new TextEncoder().encode(r.stdout)[0];
    assertEquals(first, g.argmax_B_each_step.at(-1), `stdout ${JSON.stringify(r.stdout)}`);
  });
}

Deno.test("generate CLI: --help lists flags with defaults; bad flags and no model fail clearly", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  for (const flag of ["--model", "--temperature", "--top-p", "--seed", "--state-in", "--threads"]) {
    assert(help.stdout.includes(flag), flag);
  }
  assert(help.stdout.includes("default 0.85"));
  const noModel = await run([]);
  assertEquals(noModel.code, 2);
  assert(noModel.stderr.includes("--model"), noModel.stderr);
  const unknown = await run(["--model", "x", "--bogus"]);
  assertEquals(unknown.code, 2);
  assert(unknown.stderr.includes("bogus"), unknown.stderr);
  const badNum = await run(["--model", "x", "--temperature", "hot"]);
  assertEquals(badNum.code, 2);
  assert(badNum.stderr.includes("--temperature"), badNum.stderr);
  const missing = await run(["--model", "/nonexistent/model.pth"]);
  assert(missing.code !== 0);
});

const st = fixture("tiny-rwkv-7v0.safetensors");
Deno.test({
  name: "generate CLI: prompt from stdin, state out and back in, seeded sampling repeats",
  ignore: !st,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const base = ["--model", st!, "--max-tokens", "20", "--seed", "7", "--quiet"];
      const a = await run(base, "The quick brown");
      const b = await run(base, "The quick brown");
      assertEquals(a.code, 0, a.stderr);
      assertEquals(a.stdout, b.stdout);
      // a saved state continues exactly like the uninterrupted run
      const s1 = await run([
        ...base,
        "--prompt",
        "The quick",
        "--state-out",
        `${dir}/s`,
        "--max-tokens",
        "0",
      ]);
      assertEquals(s1.code, 0, s1.stderr);
      const whole = await run([...base, "--prompt", "The quick brown", "--temperature", "0"]);
      const resumed = await run([
        ...base,
        "--state-in",
        `${dir}/s`,
        "--prompt",
        " brown",
        "--temperature",
        "0",
      ]);
      assertEquals(resumed.code, 0, resumed.stderr);
      assertEquals(resumed.stdout, whole.stdout);
      // an empty prompt is refused
      const empty = await run([...base, "--prompt", ""]);
      assertEquals(empty.code, 2);
      assert(empty.stderr.includes("empty"), empty.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "generate CLI: a GGUF model runs with the tokenizer it carries (greedy = official argmax)",
  ignore: !fixture("gguf/rwkv7-2x256-F16.gguf"),
  fn: async () => {
    const base = fixture("gguf/rwkv7-2x256-F16.gguf")!.replace(/\.gguf$/, "");
    const llama = JSON.parse(await Deno.readTextFile(`${base}.llamacpp.json`));
    const ref = JSON.parse(await Deno.readTextFile(`${base}.official-deq.json`));
    // no --tokenizer: text_B must encode to tokens_B with the file's own vocabulary
    const r = await run([
      ...["--model", `${base}.gguf`, "--prompt", llama.text_B, "--dtype", "f32"],
      ...["--temperature", "0", "--max-tokens", "1", "--quiet"],
    ]);
    assertEquals(r.code, 0, r.stderr);
    const { loadTokenizer } = await import("../lib/tokenizer/mod.ts");
    const tok = await loadTokenizer(`${base}.gguf`);
    assertEquals(tok.encode(llama.text_B), ref.tokens_B);
    assertEquals(r.stdout.replace(/\n$/, ""), tok.decode([ref.argmax_B_each_step.at(-1)]));
  },
});
