/**
 * A longer fuzz campaign against the loaders than `tests/fuzz_test.ts` runs: every crafted
 * attack once, then `--cases N` seeded mutants (of the fixtures, of crafted `.pth`, legacy and
 * rwkv.cpp files, and SafeTensors data flips), each in its own process under the same bounds
 * (5 s of CPU, 1 GiB of RSS, killed past 60 s). Prints a summary per attack class and every
 * case that broke a rule (with its seed, so it can be replayed), and exits 1 when any did.
 *
 *   deno run -A tests/fuzz_campaign.ts --cases 2000 [--seed 7] [--jobs 2] [--no-attacks] [--torch]
 *
 * With `--torch` (needs Debian's python3-torch, torch 1.13) every `.pth` case is also loaded by
 * torch, through an unpickler restricted to our allow-list, and the outcomes compared: a file
 * we read must read the same in torch, byte for byte; files we refuse that torch reads are
 * listed (budgets and deliberate refusals).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BOUNDS, campaign, compareWithTorch, runPool } from "./_fuzz.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cases: { type: "string", default: "500" },
    seed: { type: "string", default: String(Date.now() % 100_000) },
    jobs: { type: "string", default: "2" },
    "no-attacks": { type: "boolean", default: false },
    torch: { type: "boolean", default: false },
  },
});
const n = Number(values.cases), seed = Number(values.seed), jobs = Number(values.jobs);
if (!Number.isInteger(n) || n < 0 || !Number.isInteger(seed) || !(jobs >= 1)) {
  console.error("--cases and --seed must be non-negative integers, --jobs at least 1");
  Deno.exit(2);
}

const cases = campaign(n, seed, !values["no-attacks"]);
console.error(
  `fuzz: ${cases.length} cases (seed ${seed}), ${jobs} at a time; bounds ${BOUNDS.cpuMs} ms ` +
    `CPU, ${BOUNDS.rssKiB >> 10} MiB RSS`,
);
const stats = new Map<string, { n: number; ok: number; err: number; cpu: number; rss: number }>();
const problems: string[] = [];
const t0 = performance.now();
let done = 0;
const vsTorch = new Map<string, number>();
const torchNotes: string[] = [];
await runPool(cases, jobs, (c, _, { problem, outcome, other }) => {
  if (other) {
    const kind = other.startsWith("DIFFERS")
      ? "differs"
      : other.startsWith("refused")
      ? "refused"
      : other;
    vsTorch.set(kind, (vsTorch.get(kind) ?? 0) + 1);
    if (kind !== "agree") torchNotes.push(`[${c.cls}] ${c.name}: ${other}`);
    if (kind === "differs") problems.push(`[${c.cls}] ${c.name}: ${other}`);
  }
  const s = stats.get(c.cls) ?? { n: 0, ok: 0, err: 0, cpu: 0, rss: 0 };
  s.n++;
  if (outcome.result?.outcome === "ok") s.ok++;
  else s.err++;
  s.cpu = Math.max(s.cpu, outcome.result?.cpuMs ?? 0);
  s.rss = Math.max(s.rss, outcome.peakKiB);
  stats.set(c.cls, s);
  if (problem) problems.push(`[${c.cls}] ${c.name}: ${problem}`);
  if (++done % 50 === 0) console.error(`  ${done}/${cases.length}`);
}, values.torch ? compareWithTorch : undefined);
console.log(`${cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
console.log("class                     cases  opened  refused  max CPU ms  max RSS MiB");
for (const [cls, s] of stats) {
  console.log(
    `${cls.padEnd(25)} ${String(s.n).padStart(5)} ${String(s.ok).padStart(7)} ${
      String(s.err).padStart(8)
    } ${s.cpu.toFixed(0).padStart(11)} ${(s.rss / 1024).toFixed(0).padStart(12)}`,
  );
}
if (values.torch) {
  console.log(
    `\nagainst torch (.pth cases): ${[...vsTorch].map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  for (const note of torchNotes.slice(0, 40)) console.log(`  ${note}`);
}
if (problems.length) {
  console.log(`\n${problems.length} problems:\n${problems.join("\n")}`);
  Deno.exit(1);
}
console.log("no problems");
