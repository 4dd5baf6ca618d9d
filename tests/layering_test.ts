/**
 * The layer order of `docs/ARCHITECTURE.md`, checked on the real module graph: `deno info --json`
 * over every module of the project (the export paths, the CLIs, `convert/`, every file of `lib/`,
 * so the Workers' entry loaded by URL too). Every `lib/` module belongs to a layer; an import
 * (static, type-only or dynamic) may only go to its own layer or a lower one, a private module
 * (`_name.ts`) is imported only from its own folder, and no modules form a cycle. A failure names
 * the importing file and line, the imported file and both layers.
 */
import { assert } from "./_assert.ts";

const ROOT = new URL("../", import.meta.url);

/**
 * The layers, lowest first: a module may import its own layer and those before it. A pattern
 * ending in `/` is a folder (everything under it), else one file. The first match wins.
 */
export const LAYERS: readonly { name: string; modules: readonly string[] }[] = [
  { name: "core", modules: ["lib/errors.ts", "lib/progress.ts", "lib/fetch.ts"] },
  { name: "formats", modules: ["lib/formats/"] },
  { name: "spec", modules: ["lib/spec/"] },
  { name: "quant", modules: ["lib/quant/"] },
  {
    name: "weights",
    modules: [
      "lib/model/ops.ts",
      "lib/model/tensor.ts",
      "lib/model/memory.ts",
      "lib/model/huge_pages.ts",
      "lib/model/norm.ts",
      "lib/model/weights.ts",
      "lib/model/_weights_plan.ts",
      "lib/model/_weights_fill.ts",
      "lib/model/state.ts",
      "lib/model/time_state.ts",
      "lib/model/batch.ts",
    ],
  },
  { name: "model", modules: ["lib/model/"] },
  { name: "backends", modules: ["lib/backend/"] },
  { name: "load", modules: ["lib/load.ts"] },
  { name: "text", modules: ["lib/sample.ts", "lib/tokenizer/", "lib/grammar/"] },
  {
    name: "generate",
    modules: ["lib/generate.ts", "lib/pipeline.ts", "lib/perplexity.ts", "lib/chat.ts"],
  },
  { name: "server", modules: ["lib/server/"] },
  {
    name: "apps",
    modules: ["cli/", "convert/", "mod.ts", "formats.ts", "convert.ts", "quant.ts", "chat.ts"],
  },
  { name: "apps", modules: ["server.ts", "backend.ts"] },
];

/** The layer of a module (path relative to the project), or undefined. */
export function layerOf(path: string): number | undefined {
  const i = LAYERS.findIndex((l) =>
    l.modules.some((m) => m.endsWith("/") ? path.startsWith(m) : path === m)
  );
  // a layer may be listed in several entries: its first one gives its place
  return i < 0 ? undefined : LAYERS.findIndex((l) => l.name === LAYERS[i].name);
}

/** One import between two project modules. */
export interface Edge {
  from: string;
  to: string;
  line: number;
  kind: "static" | "type" | "dynamic";
}

/** Every import between the project's modules, from `deno info --json` over all of them. */
export async function projectImports(root: URL = ROOT): Promise<Edge[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const p = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${p}/`);
      else if (p.endsWith(".ts") && !p.endsWith("_test.ts")) files.push(p);
    }
  };
  for (const dir of ["lib/", "cli/", "convert/"]) await walk(dir);
  files.push(
    "mod.ts",
    "formats.ts",
    "convert.ts",
    "quant.ts",
    "chat.ts",
    "server.ts",
    "backend.ts",
  );
  const tmp = await Deno.makeTempDir({ prefix: "rwkv-layering-" });
  try {
    const entry = `${tmp}/entry.ts`;
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(new URL(f, root).href)};\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: {
          code?: { specifier: string; span: { start: { line: number } } };
          type?: { specifier: string; span: { start: { line: number } } };
          isDynamic?: boolean;
        }[];
      }[];
    };
    const rel = (s: string) => s.startsWith(root.href) ? s.slice(root.href.length) : undefined;
    const edges: Edge[] = [];
    for (const m of graph.modules) {
      const from = rel(m.specifier);
      if (!from || !files.includes(from)) continue;
      for (const d of m.dependencies ?? []) {
        const target = d.code ?? d.type;
        const to = target && rel(target.specifier);
        if (!to || !target) continue;
        const kind = d.isDynamic ? "dynamic" : d.code ? "static" : "type";
        edges.push({ from, to, line: target.span.start.line + 1, kind });
      }
    }
    return edges;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** What runs against the order: unplaced modules, upward imports, private imports, cycles. */
export function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  const modules = new Set(edges.flatMap((e) => [e.from, e.to]));
  for (const m of [...modules].sort()) {
    if (m.startsWith("lib/") && layerOf(m) === undefined) {
      out.push(`${m} has no layer: add it to LAYERS in tests/layering_test.ts (and the docs)`);
    }
  }
  for (const e of edges) {
    const a = layerOf(e.from), b = layerOf(e.to);
    const at = `${e.from}:${e.line} imports ${e.to} (${e.kind})`;
    if (a !== undefined && b !== undefined && b > a) {
      out.push(`${at}: layer ${LAYERS[a].name} may not import layer ${LAYERS[b].name}`);
    }
    const base = e.to.slice(e.to.lastIndexOf("/") + 1);
    const dir = (p: string) => p.slice(0, p.lastIndexOf("/") + 1);
    if (base.startsWith("_") && dir(e.from) !== dir(e.to)) {
      out.push(`${at}: ${base} is private to ${dir(e.to) || "the root"}`);
    }
  }
  // cycles: Tarjan's strongly connected components
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  let counter = 0;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) {
        const inside = edges.filter((e) => scc.includes(e.from) && scc.includes(e.to));
        out.push(
          `a cycle of ${scc.length} modules: ${
            inside.map((e) => `${e.from}:${e.line} → ${e.to}`).join(", ")
          }`,
        );
      }
    }
  };
  for (const v of [...modules].sort()) if (!index.has(v)) visit(v);
  return out;
}

Deno.test("layering: every lib/ module has a layer and imports only its own or lower ones, no cycles", async () => {
  const edges = await projectImports();
  assert(edges.length > 200, `only ${edges.length} imports found: is deno info reading the graph?`);
  const bad = violations(edges);
  assert(
    bad.length === 0,
    `${bad.length} imports against docs/ARCHITECTURE.md:\n  ${bad.join("\n  ")}`,
  );
});

Deno.test("layering: the check catches an upward import, a foreign private module and a cycle", () => {
  const bad = violations([
    { from: "lib/formats/pth.ts", to: "lib/model/model.ts", line: 3, kind: "static" },
    { from: "lib/model/state.ts", to: "lib/formats/_zip.ts", line: 4, kind: "static" },
    { from: "lib/server/a.ts", to: "lib/server/b.ts", line: 5, kind: "type" },
    { from: "lib/server/b.ts", to: "lib/server/a.ts", line: 6, kind: "dynamic" },
  ]);
  assert(
    bad.some((m) => m.startsWith("lib/formats/pth.ts:3 imports lib/model/model.ts")),
    bad.join("\n"),
  );
  assert(bad.some((m) => m.includes("_zip.ts is private to lib/formats/")), bad.join("\n"));
  assert(bad.some((m) => m.startsWith("a cycle of 2 modules")), bad.join("\n"));
});
