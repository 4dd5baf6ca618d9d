/**
 * The "Models beyond 4 GiB" table of docs/SPEED.md: every row a fresh `bench/decode.ts` process
 * (one at a time), all the rows in turn, `--runs` times over, then the table in Markdown with
 * each cell's three runs and, per run, whether it meets issue 26's bar (q8/q4 ≥ 80 %, bf16/f16
 * ≥ 75 % of the run's median read ceiling).
 *
 *   deno run -A bench/big_table.ts --dir /models --runs 3 [--only 7-2.9b,…] [--huge-pages both]
 *
 * `--huge-pages on|off|both` (default off): `on` loads every model with its weights in huge
 * pages (`bench/decode.ts --huge-pages`), `both` runs every row both ways, one after the other
 * in each run (an A/B in the same minutes); every row also reports its share of the plain loop
 * over huge pages.
 *
 * `--dir` holds the models `bench/make_model.ts` writes, by these names (a missing one is
 * skipped, and said):
 *
 *   deno run -A bench/make_model.ts --preset 7-2.9b --dtype q8 --out DIR/7-2.9b-q8.safetensors
 *   deno run -A bench/make_model.ts --preset 7-2.9b --dtype q4 --fill random --out DIR/7-2.9b-q4.safetensors
 *   deno run -A bench/make_model.ts --preset 7-2.9b --out DIR/7-2.9b.safetensors        # bf16
 *   deno run -A bench/make_model.ts --preset 7-2.9b --dtype f16 --out DIR/7-2.9b-f16.safetensors
 *
 * and likewise `7-7.2b` (q8, q4, bf16), `7-13.3b` (q8, q4), `4-430m` and `7-0.4b` (bf16).
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dir: { type: "string" },
    runs: { type: "string", default: "3" },
    only: { type: "string" },
    "huge-pages": { type: "string", default: "off" },
  },
});
const runs = Number(values.runs);
const hugeModes = ({ off: [false], on: [true], both: [false, true] } as Record<string, boolean[]>)[
  values["huge-pages"]
];
if (!values.dir || !(Number.isInteger(runs) && runs >= 1) || !hugeModes) {
  console.error(
    "usage: bench/big_table.ts --dir DIR [--runs N] [--only NAME,…] [--huge-pages off|on|both]",
  );
  Deno.exit(2);
}

/** [file, dtype, tokens decoded, the model's name in the table, what the file is]. */
const ROWS: [string, string, number, string, string][] = [
  ["7-2.9b-q8", "q8", 16, "RWKV-7 2.9B (32×2560)", "our q8 file, zeros"],
  ["7-2.9b-q4", "q4", 16, "RWKV-7 2.9B (32×2560)", "our q4 file, random"],
  ["7-2.9b", "bf16", 16, "RWKV-7 2.9B (32×2560)", "bf16 .safetensors"],
  ["7-2.9b-f16", "f16", 16, "RWKV-7 2.9B (32×2560)", "f16 .safetensors"],
  ["7-7.2b-q8", "q8", 12, "RWKV-7 7.2B (32×4096)", "our q8 file, zeros"],
  ["7-7.2b-q4", "q4", 12, "RWKV-7 7.2B (32×4096)", "our q4 file, random"],
  ["7-7.2b", "bf16", 12, "RWKV-7 7.2B (32×4096)", "bf16 .safetensors"],
  ["7-13.3b-q8", "q8", 8, "RWKV-7 13.3B (61×4096)", "our q8 file, zeros"],
  ["7-13.3b-q4", "q4", 8, "RWKV-7 13.3B (61×4096)", "our q4 file, random"],
  ["4-430m", "bf16", 32, "RWKV-4 430M", "bf16 .safetensors"],
  ["7-0.4b", "bf16", 32, "RWKV-7 0.4B", "bf16 .safetensors"],
];

const only = values.only?.split(",");
const rows = ROWS.filter(([file]) => {
  if (only && !only.some((o) => file.startsWith(o))) return false;
  try {
    Deno.statSync(`${values.dir}/${file}.safetensors`);
    return true;
  } catch {
    console.error(`${values.dir}/${file}.safetensors: not there, its row skipped`);
    return false;
  }
});

/** The rows to run, each with whether its weights go to huge pages. */
const runsOf = rows.flatMap((r) => hugeModes.map((huge) => [...r, huge] as const));

/** One decode.ts run of a row: its printed figures by name. */
async function decode(
  file: string,
  dtype: string,
  tokens: number,
  huge: boolean,
): Promise<Map<string, string>> {
  const script = new URL("./decode.ts", import.meta.url).pathname;
  const args = ["run", "-A", script, "--model", `${values.dir}/${file}.safetensors`];
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...args,
      ...(huge ? ["--huge-pages"] : []),
      ...["--dtype", dtype, "--tokens", String(tokens), "--prompts", "0"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${file} ${dtype}: ${new TextDecoder().decode(out.stderr)}`);
  return new Map(text.split("\n").map((l) => l.trim().split(/\s+/) as [string, string]));
}

const results: Map<string, string>[][] = runsOf.map(() => []);
for (let run = 1; run <= runs; run++) {
  for (const [i, [file, dtype, tokens, , , huge]] of runsOf.entries()) {
    const r = await decode(file, dtype, tokens, huge);
    results[i].push(r);
    console.error(
      `run ${run}: ${file} ${dtype}${huge ? " huge pages" : ""} ${r.get("msPerToken")} ms/token, ${
        r.get("percentOfCeiling")
      } % of the ceiling (${r.get("ceilingGBs")} GB/s)`,
    );
  }
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const header = [
  "model (shape)",
  "dtype",
  "from",
  "load s",
  "peak RSS MiB",
  "weights MiB",
  "bound MiB",
  `ms/token (${runs} runs)`,
  "GB/s",
  "% of ceiling (median)",
  "% of best pass",
  "% of huge-page ceiling",
];
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---").join("|")}|`);
const met = [0, 0], cells = [0, 0]; // by huge pages off, on
for (const [i, [, dtype, , name, from, huge]] of runsOf.entries()) {
  const rs = results[i], all = (k: string) => rs.map((r) => r.get(k) ?? "?").join(" / ");
  const bar = dtype === "q8" || dtype === "q4" ? 80 : 75;
  if (!name.startsWith("RWKV-7 0.4B") && !name.startsWith("RWKV-4")) {
    for (const r of rs) {
      cells[+huge]++;
      if (Number(r.get("percentOfCeiling")) >= bar) met[+huge]++;
    }
  }
  console.log(`| ${
    [
      name,
      dtype,
      huge ? `${from}, huge pages` : from,
      median(rs.map((r) => Number(r.get("loadSeconds")))),
      Math.max(...rs.map((r) => Number(r.get("peakRssMiB")))),
      rs[0].get("weightMiB"),
      rs[0].get("rssLimitMiB"),
      all("msPerToken"),
      all("effectiveGBs"),
      all("percentOfCeiling"),
      all("percentOfBestCeiling"),
      all("percentOfHugeCeiling"),
    ].join(" | ")
  } |`);
}
for (const huge of [0, 1]) {
  if (!cells[huge]) continue;
  console.log(
    `\n${huge ? "Huge pages" : "4 KiB pages"}: ${met[huge]} of ${
      cells[huge]
    } cells of the 2.9B, 7.2B and 13.3B rows meet the bar (% of the plain loop's median).`,
  );
}
