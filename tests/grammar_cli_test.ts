/**
 * `cli/generate.ts --json-schema FILE` and `--grammar FILE` end to end on a fixture model, and
 * their bad inputs (one line, exit 2).
 * @module
 */

import { assert, assertEquals } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { runScript } from "./_with.ts";

const run = (args: string[]) => runScript("cli/generate.ts", args);

Deno.test("grammar CLI: --json-schema and --grammar constrain the output; bad files exit 2", async () => {
  const model = fixture("tiny-rwkv-7v0-bf16.pth");
  if (!model) return;
  const { dir, cleanup } = await tempDir();
  try {
    const schema = `${dir}/person.json`;
    await Deno.writeTextFile(
      schema,
      JSON.stringify({
        type: "object",
        properties: {
          name: { type: "string", maxLength: 10 },
          age: { type: "integer", minimum: 0, maximum: 120 },
        },
        required: ["name", "age"],
        additionalProperties: false,
      }),
    );
    const common = ["--model", model, "--prompt", "Person: ", "--temperature", "0", "--quiet"];
    const ok = await run([...common, "--json-schema", schema, "--max-tokens", "80"]);
    assertEquals(ok.code, 0, ok.stderr);
    const value = JSON.parse(ok.stdout);
    assertEquals(Object.keys(value), ["name", "age"]);
    assert(typeof value.name === "string" && value.name.length <= 10, ok.stdout);
    assert(Number.isInteger(value.age) && value.age >= 0 && value.age <= 120, ok.stdout);

    const cut = await run([...common, "--json-schema", schema, "--max-tokens", "5"]);
    assertEquals(cut.code, 0, cut.stderr);
    assert(cut.stderr.includes("incomplete"), cut.stderr);

    const gbnf = `${dir}/list.gbnf`;
    await Deno.writeTextFile(gbnf, 'root ::= ("- " [a-z]{1,8} "\\n"){2}\n');
    const g = await run([...common, "--grammar", gbnf, "--max-tokens", "40"]);
    assertEquals(g.code, 0, g.stderr);
    assert(/^- [a-z]{1,8}\n- [a-z]{1,8}\n\n$/.test(g.stdout), JSON.stringify(g.stdout));

    const bad: [string, string, string, RegExp][] = [
      [
        "bad.json",
        '{"type": "object", "properties": {"a": {"not": {}}}}',
        "--json-schema",
        /bad\.json: JSON Schema #\/properties\/a\/not: unsupported keyword "not"/,
      ],
      ["broken.json", "{", "--json-schema", /broken\.json: malformed JSON/],
      ["bad.gbnf", 'root ::= "a" b', "--grammar", /bad\.gbnf: line 1:14: undefined rule "b"/],
    ];
    for (const [name, text, flag, re] of bad) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      const r = await run([...common, flag, `${dir}/${name}`]);
      assertEquals(r.code, 2, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assertEquals(lines.length, 1, r.stderr);
      assert(re.test(lines[0]), lines[0]);
    }
    const missing = await run([...common, "--grammar", `${dir}/nope.gbnf`]);
    assertEquals(missing.code, 2);
    assert(missing.stderr.includes("nope.gbnf"), missing.stderr);
  } finally {
    await cleanup();
  }
});
