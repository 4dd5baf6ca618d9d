/**
 * The README's commands run as written: every code block preceded by `<!-- runnable -->` (or
 * `<!-- runnable exit=N -->`) is run from a scratch directory that holds links to the repository's
 * files beside `../shared/fixtures` (a link to the fixtures), so the block's relative paths resolve
 * as they do for a reader in a clone, and whatever it writes lands in the scratch directory.
 * `sh` blocks run in `bash -e`; `ts` blocks are type-checked together, then run as scripts. In an
 * `exit=N` block, lines starting with `$ ` are commands (the last must exit with N) and the other
 * lines must appear in their output.
 */
import { assert, assertEquals } from "./_assert.ts";
import { fixture, FIXTURES_DIR } from "../testing/fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const README = await Deno.readTextFile(`${ROOT}README.md`);

/** A marked block of the README. */
interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  /** Exit code its (last) command must give. */
  exit: number;
}

/** The blocks marked runnable, in order. */
export function runnableBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const mark = lines[i].trim().match(/^<!--\s*runnable(?:\s+exit=(\d+))?\s*-->$/);
    if (!mark) continue;
    let j = i + 1;
    while (j < lines.length && lines[j].trim() === "") j++;
    const fence = lines[j]?.match(/^```(\w+)\s*$/);
    if (!fence) throw new Error(`README.md:${i + 1}: "runnable" is not followed by a code block`);
    const end = lines.findIndex((l, k) => k > j && l.startsWith("```"));
    if (end < 0) throw new Error(`README.md:${j + 1}: the code block never ends`);
    blocks.push({
      line: j + 1,
      lang: fence[1],
      code: lines.slice(j + 1, end).join("\n") + "\n",
      exit: Number(mark[1] ?? 0),
    });
    i = end;
  }
  return blocks;
}

const BLOCKS = runnableBlocks(README);

Deno.test("readme: it starts small (under 250 lines; the rest lives in docs/)", () => {
  const lines = README.trimEnd().split("\n").length;
  assert(lines < 250, `README.md has ${lines} lines: move detail to a docs/ page and link it`);
});

Deno.test("readme: marked blocks are found and are sh or ts", () => {
  // the README marks a generate command, a script, a batch, a Pipeline, an error and a convert
  assert(BLOCKS.length >= 5, `only ${BLOCKS.length} runnable blocks`);
  for (const b of BLOCKS) {
    assert(b.lang === "sh" || b.lang === "ts", `README.md:${b.line} ${b.lang}`);
  }
  assert(BLOCKS.some((b) => b.exit !== 0), "no block checks an error exit");
});

Deno.test("readme: the block parser reads marks, exit codes and fences", () => {
  const md = "x\n<!-- runnable -->\n\n```sh\necho 1\n```\n```sh\nnot marked\n```\n" +
    "<!-- runnable exit=2 -->\n```sh\n$ false\nout\n```\n";
  assertEquals(runnableBlocks(md), [
    { line: 4, lang: "sh", code: "echo 1\n", exit: 0 },
    { line: 11, lang: "sh", code: "$ false\nout\n", exit: 2 },
  ]);
});

/** A scratch copy of the repository's shape: links to its entries, fixtures at ../shared. */
async function scratch(): Promise<{ cwd: string; cleanup: () => Promise<void> }> {
  const top = await Deno.makeTempDir({ prefix: "rwkv-readme-" });
  const cwd = `${top}/repo`;
  await Deno.mkdir(cwd);
  await Deno.mkdir(`${top}/shared`);
  await Deno.symlink(FIXTURES_DIR, `${top}/shared/fixtures`);
  for await (const e of Deno.readDir(ROOT)) {
    if (e.name === ".git") continue;
    // deno.json and deno.lock are copied: a run that updates the lock must not touch ours
    if (e.name === "deno.json" || e.name === "deno.lock") {
      await Deno.copyFile(`${ROOT}${e.name}`, `${cwd}/${e.name}`);
    } else {
      await Deno.symlink(`${ROOT}${e.name}`, `${cwd}/${e.name}`);
    }
  }
  return { cwd, cleanup: () => Deno.remove(top, { recursive: true }).catch(() => {}) };
}

const PATH = `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`;

async function run(cmd: string, args: string[], cwd: string) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { PATH, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

// the fixtures the marked blocks read; absent, the blocks are skipped with a notice (or fail in CI)
const ready = [
  "tiny-rwkv-7v0.safetensors",
  "tiny-rwkv-7v0-bf16.pth",
].every((n) => fixture(n) !== undefined);

Deno.test({
  name: "readme: runnable blocks run as written",
  ignore: !ready,
  async fn(t) {
    const { cwd, cleanup } = await scratch();
    try {
      const scripts: string[] = [];
      BLOCKS.forEach((b, i) => {
        if (b.lang === "ts") scripts.push(`readme_block_${i}.ts`);
      });
      await Promise.all(
        BLOCKS.map((b, i) =>
          b.lang === "ts" ? Deno.writeTextFile(`${cwd}/readme_block_${i}.ts`, b.code) : undefined
        ),
      );
      await t.step("ts blocks type-check", async () => {
        const r = await run(Deno.execPath(), ["check", ...scripts], cwd);
        assertEquals(r.code, 0, r.text);
      });
      for (const [i, b] of BLOCKS.entries()) {
        await t.step(
          `README.md:${b.line} (${b.lang}${b.exit ? `, exit ${b.exit}` : ""})`,
          async () => {
            if (b.lang === "ts") {
              const r = await run(Deno.execPath(), ["run", "-A", `readme_block_${i}.ts`], cwd);
              assertEquals(r.code, b.exit, r.text);
            } else if (b.exit === 0) {
              const r = await run("bash", ["-e", "-c", b.code], cwd);
              assertEquals(r.code, 0, r.text);
            } else {
              // a transcript: `$ ` lines are commands (a trailing `\` continues one), the rest output
              const commands: string[] = [];
              const expected: string[] = [];
              let open = false;
              for (const l of b.code.trimEnd().split("\n")) {
                if (open) commands[commands.length - 1] += "\n" + l;
                else if (l.startsWith("$ ")) commands.push(l.slice(2));
                else expected.push(l);
                open = (l.startsWith("$ ") || open) && l.endsWith("\\");
              }
              assert(commands.length > 0, `README.md:${b.line}: no "$ " command`);
              let last = { code: 0, text: "" };
              let all = "";
              for (const c of commands) {
                last = await run("bash", ["-c", c], cwd);
                all += last.text;
              }
              assertEquals(last.code, b.exit, last.text);
              for (const e of expected) assert(all.includes(e), `output lacks ${e}:\n${all}`);
            }
          },
        );
      }
    } finally {
      await cleanup();
    }
  },
});
