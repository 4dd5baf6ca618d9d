/**
 * Every CLI turns an expected failure (missing file, bad flag, bad option value) into one line
 * on stderr naming the problem and exit code 2: no stack trace.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";

const st7 = fixture("tiny-rwkv-7v0.safetensors");
const cli = (name: string) => new URL(`../cli/${name}.ts`, import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const { code, stderr } = await p.output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

const missing = "/nonexistent-rwkv-test/model.pth";
const cases: [string, string[], RegExp][] = [
  [
    "chat: missing model",
    [cli("chat"), "--model", missing],
    /model file .*model\.pth does not exist/,
  ],
  ["generate: missing model", [cli("generate"), "--model", missing], /does not exist/],
  ["serve: missing model", [cli("serve"), "--model", missing], /does not exist/],
  ["perplexity: missing text", [cli("perplexity"), "--model", missing, missing], /No such file/],
  ["convert: missing input", [cli("convert"), missing, "/tmp/x.safetensors"], /No such file/],
  [
    "merge_lora: missing base",
    [cli("merge_lora"), "--base", missing, "--lora", missing, "--alpha", "1", "--out", "/tmp/x"],
    /No such file/,
  ],
  ["generate: unknown flag", [cli("generate"), "--bogus"], /Unknown option '--bogus'/],
];
if (st7) {
  cases.push(
    ["chat: --dtype q5", [cli("chat"), "--model", st7, "--dtype", "q5"], /--dtype "q5": expected/],
    ["generate: --threads 0", [cli("generate"), "--model", st7, "--threads", "0"], /--threads/],
    [
      "serve: --huge-pages maybe",
      [cli("serve"), "--model", st7, "--huge-pages", "maybe"],
      /--huge-pages must be on or off, not "maybe"/,
    ],
    [
      "perplexity: --backend",
      [cli("perplexity"), "--model", st7, "--backend", "tpu", st7],
      /--backend "tpu": expected auto, reference, wasm or webgpu/,
    ],
    [
      "perplexity: --device (deprecated alias)",
      [cli("perplexity"), "--model", st7, "--device", "tpu", st7],
      /--device/,
    ],
    [
      "generate: missing --state-in",
      [cli("generate"), "--model", st7, "--quiet", "--state-in", missing, "--prompt", "x"],
      /No such file/,
    ],
  );
}

Deno.test("cli: expected failures print one line and exit 2", async () => {
  for (const [what, args, re] of cases) {
    const { code, stderr } = await run(args);
    const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !/^loading/.test(l));
    assertEquals(code, 2, `${what}: exit code (stderr: ${stderr})`);
    assertEquals(lines.length, 1, `${what}: one line, got ${JSON.stringify(stderr)}`);
    assert(lines[0].startsWith("error: ") && re.test(lines[0]), `${what}: ${lines[0]}`);
  }
});
