/**
 * Draws benchmark results as SVG:
 *
 *   deno run -A bench/chart.ts --decode decode.json --out docs/decode.svg
 *   deno run -A bench/chart.ts --throughput serve.json --out docs/throughput.svg
 *
 * `--decode` takes the rows `bench/decode.ts --json FILE` appends (the best of repeated runs of
 * a model and dtype is drawn); `--throughput` the serving benchmark's `--json FILE` result (one
 * object or an array of them). `--title` replaces the chart's title. The SVG is written to a
 * temporary file and renamed into place. Bad input exits with code 2 and a message naming the
 * file and field.
 * @module
 */

import { parseArgs } from "node:util";
import {
  ChartInputError,
  decodeChart,
  parseDecodeRows,
  parseThroughput,
  throughputChart,
} from "../testing/chart.ts";

function fail(message: string): never {
  console.error(`chart: ${message}`);
  Deno.exit(2);
}

let values: { decode?: string; throughput?: string; out?: string; title?: string };
try {
  ({ values } = parseArgs({
    args: Deno.args,
    options: {
      decode: { type: "string" },
      throughput: { type: "string" },
      out: { type: "string" },
      title: { type: "string" },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
if (!values.decode === !values.throughput) {
  fail("give one of --decode FILE or --throughput FILE");
}
if (!values.out) fail("--out FILE.svg is required");
const input = (values.decode ?? values.throughput)!;

let json: unknown;
try {
  json = JSON.parse(await Deno.readTextFile(input));
} catch (e) {
  fail(`${input}: ${e instanceof SyntaxError ? "not valid JSON: " : ""}${(e as Error).message}`);
}
let svg: string;
try {
  svg = values.decode
    ? decodeChart(parseDecodeRows(json, input), values.title)
    : throughputChart(parseThroughput(json, input), values.title);
} catch (e) {
  if (e instanceof ChartInputError) fail(e.message);
  throw e;
}
const tmp = `${values.out}.tmp`;
try {
  await Deno.writeTextFile(tmp, svg);
  await Deno.rename(tmp, values.out);
} catch (e) {
  await Deno.remove(tmp).catch(() => {});
  fail(`${values.out}: ${(e as Error).message}`);
}
console.log(`wrote ${values.out} (${svg.length} bytes)`);
