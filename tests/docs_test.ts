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

/** Every library source a remote importer may load: lib/, cli/, convert/ and the export paths. */
async function librarySources(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts")) files.push(new URL(e.name, dir).pathname);
    }
  };
  for (const d of ["lib/", "cli/", "convert/"]) await walk(new URL(d, ROOT));
  return [...files, ...ENTRIES];
}

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

// The names that left mod.ts in 0.1.0 (CHANGELOG.md): still importable from it for one release,
// the very same values as at their new homes, marked @deprecated, and listed in the changelog.
import * as mod from "../mod.ts";
import * as formats from "../formats.ts";
import * as convert from "../convert.ts";
import * as backend from "../backend.ts";

const MOVED_VALUES = {
  openCheckpoint: formats.openCheckpoint,
  openSafetensors: formats.openSafetensors,
  writeSafetensors: formats.writeSafetensors,
  writePth: formats.writePth,
  toFloat32: formats.toFloat32,
  bf16ToF32: formats.bf16ToF32,
  f16ToF32: formats.f16ToF32,
  f32ToBf16: formats.f32ToBf16,
  f32ToF16: formats.f32ToF16,
  convertToSafetensors: convert.convertToSafetensors,
  detectSpec: backend.detectSpec,
};
const MOVED_TYPES = [
  "Checkpoint",
  "CheckpointFormat",
  "DType",
  "TensorInfo",
  "SafetensorsCheckpoint",
  "SafetensorsTensorInfo",
  "TensorToWrite",
  "WriteSafetensorsOptions",
  "WritePthOptions",
  "ConvertOptions",
];
// a script of the first release compiles: these types are still exported by mod.ts
type _FirstReleaseTypes = [
  mod.Checkpoint,
  mod.CheckpointFormat,
  mod.DType,
  mod.TensorInfo,
  mod.SafetensorsCheckpoint,
  mod.SafetensorsTensorInfo,
  mod.TensorToWrite,
  mod.WriteSafetensorsOptions,
  mod.WritePthOptions,
  mod.ConvertOptions,
];

Deno.test("docs: names that left mod.ts are deprecated re-exports, listed in CHANGELOG.md", async () => {
  const source = await Deno.readTextFile(new URL("mod.ts", ROOT));
  const changelog = await Deno.readTextFile(new URL("CHANGELOG.md", ROOT));
  const unreleased = changelog.slice(changelog.indexOf("## [Unreleased]"));
  for (const [name, value] of Object.entries(MOVED_VALUES)) {
    assert((mod as Record<string, unknown>)[name] === value, `mod.ts ${name} is not the moved one`);
  }
  for (const name of [...Object.keys(MOVED_VALUES), ...MOVED_TYPES]) {
    const decl = new RegExp(
      `@deprecated(?:(?!\\*/)[\\s\\S])*\\*/\\s*export (const|type) ${name}\\b`,
    );
    assert(decl.test(source), `mod.ts: ${name} is not exported with @deprecated`);
    assert(unreleased.includes(`\`${name}\``), `CHANGELOG.md does not name ${name}`);
  }
});

Deno.test("docs: test-only npm packages are pinned in deno.json; the library never uses the map", async () => {
  const imports = config.imports as Record<string, string>;
  const pinned = new Map(
    Object.entries(imports).map(([name, spec]) => {
      // a package, or a prefix for its subpaths ("openai/": "npm:/openai@5.23.2/")
      const m = spec.match(/^npm:(\/?)((?:@[^/@]+\/)?[^/@]+)@(\d+\.\d+\.\d+)(\/?)$/);
      const prefix = name.endsWith("/");
      assert(
        m && m[2] === name.replace(/\/$/, "") && (m[1] === "/") === prefix &&
          (m[4] === "/") === prefix,
        `deno.json imports ${name}: ${spec} is not npm:${name}@x.y.z (or npm:/NAME@x.y.z/)`,
      );
      return [m[2], m[3]];
    }),
  );
  // what a remote importer loads (it never reads deno.json): every specifier relative, node: or
  // a full pinned npm:, and a package the tests also use at the version the map pins
  for (const f of await librarySources()) {
    const text = await Deno.readTextFile(f);
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;"]*?\bfrom\s*"([^"]+)"/gm),
      ...text.matchAll(/^\s*import\s*"([^"]+)"/gm),
      ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
    ];
    for (const [, spec] of specs) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const m = spec.match(/^npm:((?:@[^/@]+\/)?[^/@]+)@(\d+\.\d+\.\d+)(\/.*)?$/);
      assert(m, `${f}: "${spec}" is neither relative, node: nor a pinned npm: specifier`);
      const want = pinned.get(m[1]);
      assert(want === undefined || want === m[2], `${f}: ${m[1]}@${m[2]}, deno.json: ${want}`);
    }
  }
});

Deno.test("docs: no JSDoc example is ignored (deno task check type-checks every one)", async () => {
  const ignored: string[] = [];
  for (const f of await librarySources()) {
    (await Deno.readTextFile(f)).split("\n").forEach((line, i) => {
      if (/^\s*\*\s*```\w*\s+ignore\b/.test(line)) {
        ignored.push(`${f.slice(ROOT.pathname.length)}:${i + 1}`);
      }
    });
  }
  assert(
    ignored.length === 0,
    `examples marked ignore (give them context, e.g. "declare const model: Model;", so they ` +
      `compile): ${ignored.join(", ")}`,
  );
});

Deno.test("docs: tests and benchmarks import npm packages by the names deno.json pins", async () => {
  const inline: string[] = [];
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(new URL(e.name, dir));
        for (const [, spec] of text.matchAll(/(?:\bfrom|\bimport\(?)\s*"(npm:[^"]+)"/g)) {
          inline.push(`${new URL(e.name, dir).pathname.slice(ROOT.pathname.length)}: ${spec}`);
        }
      }
    }
  };
  for (const d of ["tests/", "bench/", "testing/"]) await walk(new URL(d, ROOT));
  assert(inline.length === 0, `pin these in deno.json "imports": ${inline.join(", ")}`);
});
