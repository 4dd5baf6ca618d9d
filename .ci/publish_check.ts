/**
 * CI: `deno publish --dry-run` (offline: it needs nothing but the tree) must pass, and the file
 * list it would publish must hold what the package needs (the license, the README, every
 * `exports` target, the built wasm, every WGSL kernel and the chat page's static files) and
 * nothing else (no tests, test fixtures, benchmarks or their outputs, CI scripts).
 *
 *   deno run -A .ci/publish_check.ts
 *
 * Exits 1 naming each problem.
 * @module
 */

const root = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(root.pathname).replace(/\/$/, "");

const out = await new Deno.Command(Deno.execPath(), {
  args: ["publish", "--dry-run", "--allow-dirty"],
  cwd: rootPath,
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "piped",
}).output();
const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
if (!out.success) {
  console.error(log);
  console.error("publish check: `deno publish --dry-run` failed");
  Deno.exit(1);
}

// "   file:///…/lib/backend/wasm/kernels.wasm (25.61KB)" → "lib/backend/wasm/kernels.wasm"
const published = new Set<string>();
for (const m of log.matchAll(/^\s+file:\/\/(\S+) \([\d.]+\w*B\)$/gm)) {
  const path = decodeURIComponent(m[1]);
  if (path.startsWith(rootPath + "/")) published.add(path.slice(rootPath.length + 1));
}
const problems: string[] = [];
if (published.size === 0) problems.push("no file list in the dry run's output:\n" + log);

/** Files under `dir` (relative to the root) whose names match `re`, skipping tool folders. */
async function walk(dir: string, re: RegExp, into: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(`${rootPath}/${dir}`)) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory && e.name !== "node_modules" && !e.name.startsWith(".")) {
      await walk(rel, re, into);
    } else if (e.isFile && re.test(e.name)) into.push(rel);
  }
  return into;
}

const config = JSON.parse(await Deno.readTextFile(`${rootPath}/deno.json`));
const exportTargets: string[] = typeof config.exports === "string"
  ? [config.exports]
  : Object.values(config.exports ?? {}) as string[];
const required = [
  "LICENSE",
  "README.md",
  "lib/backend/wasm/kernels.wasm",
  "lib/backend/wasm/kernels_split.wasm",
  ...exportTargets.map((t) => t.replace(/^\.\//, "")),
  ...await walk("lib", /\.wgsl$/),
  ...await walk("lib/server/static", /./),
];
for (const f of required) {
  if (!published.has(f)) problems.push(`missing from the package: ${f}`);
}

const forbidden: [RegExp, string][] = [
  [/^(tests|bench|\.ci|\.tools|node_modules)\//, "tests, benchmarks, CI or tools"],
  [/(^|\/)fixtures\//, "test fixtures"],
  [/_test\.ts$/, "a test"],
  [/\.(pth|safetensors|bin|gguf|npy|pt|ckpt)$/, "model weights (fixtures or bench models)"],
  [/(^|\/)bench[-_]?(out|results?)|\.(log|tmp)$/, "a benchmark output"],
];
for (const f of published) {
  for (const [re, what] of forbidden) {
    if (re.test(f)) problems.push(`must not be published (${what}): ${f}`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`publish check: ${p}`);
  Deno.exit(1);
}
console.log(
  `publish check: ok, ${published.size} files (${required.length} required ones present)`,
);
