/**
 * The public API is documented where it is declared: `deno doc --lint` over every export path of
 * deno.json (every exported symbol and member has JSDoc, no public type refers to an unexported
 * one), and every export carries an `@example`.
 */
import { assert } from "./_assert.ts";

const ROOT = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
const ENTRIES: string[] = Object.values(config.exports as Record<string, string>)
  .map((p) => new URL(p, ROOT).pathname);

Deno.test("docs: deno.json exports the subpaths", () => {
  for (const p of [".", "./formats", "./convert", "./quant", "./chat", "./server", "./backend"]) {
    assert(p in config.exports, `export ${p}`);
  }
});

Deno.test("docs: deno doc --lint passes on every export path", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", ...ENTRIES],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  // deno colours its report; strip the escapes so the failure message reads plainly
  // deno-lint-ignore no-control-regex
  assert(out.success, text.replace(/\x1b\[[0-9;]*m/g, "").slice(0, 4000));
});

Deno.test("docs: every export of every export path has an @example", async () => {
  // one entry at a time: an entry re-exporting another's symbol lists it without its docs
  const missing: string[] = [];
  let total = 0;
  for (const entry of ENTRIES) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["doc", "--json", entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    // { nodes: { [module]: { symbols: [{ name, declarations: [{ jsDoc: { tags } }] }] } } }
    type Symbol = { name: string; declarations: { jsDoc?: { tags?: { kind: string }[] } }[] };
    const doc = JSON.parse(new TextDecoder().decode(out.stdout));
    const symbols: Symbol[] = Object.values(
      doc.nodes as Record<string, { symbols: Symbol[] }>,
    ).flatMap((m) => m.symbols);
    total += symbols.length;
    for (const s of symbols) {
      const example = s.declarations.some((d) =>
        (d.jsDoc?.tags ?? []).some((t) => t.kind === "example")
      );
      if (!example) missing.push(`${s.name} (${entry.split("/").pop()})`);
    }
  }
  assert(total > 60, `only ${total} exports found: did the doc format change?`);
  assert(missing.length === 0, `exports without an @example: ${missing.join(", ")}`);
});
