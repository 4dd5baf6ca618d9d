/**
 * The benchmark charts (testing/chart.ts, bench/chart.ts): valid SVG (checked by an XML
 * validator), bars and lines where the numbers put them, text escaped, and the command's
 * handling of files and bad input.
 * @module
 */

import { XMLValidator } from "fast-xml-parser";
import {
  ChartInputError,
  decodeChart,
  type DecodeRow,
  parseDecodeRows,
  parseThroughput,
  throughputChart,
  type ThroughputResult,
} from "../testing/chart.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { tempDir } from "../testing/fixtures.ts";

const row = (model: string, dtype: string, ms: number, mib: number, gbs = 20): DecodeRow => ({
  model,
  dtype,
  msPerToken: ms,
  promptTokPerSec: 300,
  bandwidthGBs: gbs,
  weightBytesPerToken: mib * 2 ** 20,
  peakRssMiB: 400,
});

const DECODE: DecodeRow[] = [
  row("7-0.1b", "bf16", 9.0, 160),
  row("7-0.1b", "q8", 5.5, 85),
  row("7-0.1b", "q8", 7.5, 85, 15), // a slower repeat: the best run is drawn
  row("7-0.1b", "q4", 3.6, 45),
  row('4-169m <&">', "q8", 4.8, 80, 25),
];

const SERVE: ThroughputResult = {
  model: "7-0.1b",
  dtype: "q8",
  rows: [4, 1, 16, 2, 8].map((streams, i) => ({
    streams,
    aggregateTokPerSec: [420, 150, 700, 260, 610][i],
    ratio: [2.8, 1, 4.67, 1.73, 4.07][i],
    ttftP50Ms: 50,
    ttftP99Ms: 90,
    itlP50Ms: 8,
    itlP99Ms: 12,
    peakRssMiB: 480,
  })),
};

function valid(svg: string): void {
  const r = XMLValidator.validate(svg);
  assert(r === true, `well-formed XML: ${JSON.stringify(r)}`);
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), "an SVG root");
}

/** Attributes of every element `tag` with class `cls`. */
function elements(svg: string, tag: string, cls: string): Record<string, string>[] {
  const re = new RegExp(`<${tag} class="${cls}"([^>]*)>`, "g");
  return [...svg.matchAll(re)].map((m) =>
    Object.fromEntries([...m[1].matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]))
  );
}

Deno.test("decode chart: one bar per model and dtype, heights and bandwidth lines to scale", () => {
  const svg = decodeChart(DECODE);
  valid(svg);
  const bars = elements(svg, "rect", "bar");
  assertEquals(bars.length, 4, "four model/dtype cells");
  const floors = elements(svg, "line", "floor");
  assertEquals(floors.length, 4);
  const base = Number(bars[0].y) + Number(bars[0].height); // the x axis
  const pxPerMs = Number(bars[0].height) / 9.0;
  for (const [i, b] of bars.entries()) {
    const cell = DECODE.filter((r) => r.model === unesc(b["data-model"]))
      .filter((r) => r.dtype === b["data-dtype"])
      .sort((x, y) => x.msPerToken - y.msPerToken)[0];
    assert(cell, `bar ${JSON.stringify(b)} is a measured cell`);
    assert(Math.abs(Number(b.height) - cell.msPerToken * pxPerMs) < 0.2, `bar ${i} to scale`);
    assertEquals(Number(b.y) + Number(b.height), base, "bars stand on the axis");
    const floorMs = cell.weightBytesPerToken / (cell.bandwidthGBs * 1e9) * 1000;
    const fy = Number(floors[i].y1);
    assert(Math.abs(base - fy - floorMs * pxPerMs) < 0.2, `bandwidth line ${i} to scale`);
  }
  // dtypes in storage order within a group, models in the order measured
  assertEquals(bars.map((b) => b["data-dtype"]), ["bf16", "q8", "q4", "q8"]);
  assert(svg.includes("4-169m &lt;&amp;&quot;&gt;"), "names escaped");
  assert(!svg.includes("<&"), "no raw markup from the data");
  assert(svg.includes("(20–25 GB/s)"), "the bandwidths of the runs drawn are named");
});

Deno.test("throughput chart: one line, points in stream order, labelled with rate and ratio", () => {
  const svg = throughputChart([SERVE]);
  valid(svg);
  const [line] = elements(svg, "polyline", "series");
  const pts = line.points.split(" ").map((p) => p.split(",").map(Number));
  assertEquals(pts.length, 5);
  for (let i = 1; i < pts.length; i++) {
    assert(pts[i][0] > pts[i - 1][0], "streams left to right");
    assert(pts[i][1] < pts[i - 1][1], "more tokens/s higher up (this data only grows)");
  }
  // heights proportional to tokens/s from a common baseline
  const sorted = [...SERVE.rows].sort((a, b) => a.streams - b.streams);
  const base = pts[0][1] + (pts[0][1] - pts[1][1]) / (260 - 150) * 150;
  for (const [i, r] of sorted.entries()) {
    const expect = base - (base - pts[0][1]) * r.aggregateTokPerSec / 150;
    assert(Math.abs(pts[i][1] - expect) < 0.5, `point ${i} to scale`);
  }
  assert(svg.includes("700 (×4.7)"), "labels carry rate and ratio");
  for (const s of [1, 2, 4, 8, 16]) assert(svg.includes(`>${s}</text>`), `x label ${s}`);
  // two results draw two lines
  const two = throughputChart([SERVE, { ...SERVE, dtype: "q4" }]);
  valid(two);
  assertEquals(elements(two, "polyline", "series").length, 2);
});

Deno.test("chart input: bad rows are refused naming the file and the field", () => {
  assertThrows(() => parseDecodeRows([], "d.json"), ChartInputError, "d.json");
  assertThrows(
    () => parseDecodeRows([{ ...DECODE[0], msPerToken: "fast" }], "d.json"),
    ChartInputError,
    "d.json: [0].msPerToken",
  );
  assertThrows(
    () => parseDecodeRows([DECODE[0], { ...DECODE[1], bandwidthGBs: undefined }], "d.json"),
    ChartInputError,
    "[1].bandwidthGBs",
  );
  assertThrows(
    () => parseThroughput({ model: "m", dtype: "q8" }, "s.json"),
    ChartInputError,
    "s.json.rows",
  );
  const bad = { ...SERVE, rows: [{ ...SERVE.rows[0], streams: -1 }] };
  assertThrows(() => parseThroughput(bad, "s.json"), ChartInputError, "s.json.rows[0].streams");
  assertEquals(parseThroughput([SERVE], "s.json").length, 1);
  assertEquals(parseThroughput(SERVE, "s.json")[0].rows.length, 5);
});

Deno.test("bench/chart.ts writes SVG from JSON files; bad input exits 2 with no output", async () => {
  const { dir, cleanup } = await tempDir();
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../bench/chart.ts", import.meta.url).pathname, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, err: new TextDecoder().decode(out.stderr) };
  };
  try {
    await Deno.writeTextFile(`${dir}/decode.json`, JSON.stringify(DECODE));
    await Deno.writeTextFile(`${dir}/serve.json`, JSON.stringify(SERVE));
    assertEquals((await run("--decode", `${dir}/decode.json`, "--out", `${dir}/d.svg`)).code, 0);
    valid(await Deno.readTextFile(`${dir}/d.svg`));
    assertEquals(
      await Deno.readTextFile(`${dir}/d.svg`),
      decodeChart(parseDecodeRows(DECODE, "x")),
    );
    const t = await run(
      "--throughput",
      `${dir}/serve.json`,
      "--out",
      `${dir}/t.svg`,
      "--title",
      "T",
    );
    assertEquals(t.code, 0, t.err);
    const tsvg = await Deno.readTextFile(`${dir}/t.svg`);
    valid(tsvg);
    assert(tsvg.includes("<title>T</title>"));

    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify([{ ...DECODE[0], dtype: 8 }]));
    const bad = await run("--decode", `${dir}/bad.json`, "--out", `${dir}/bad.svg`);
    assertEquals(bad.code, 2);
    assert(bad.err.includes("bad.json: [0].dtype"), bad.err);
    assert(!bad.err.includes("    at "), "no stack trace");
    await Deno.writeTextFile(`${dir}/broken.json`, "{");
    const broken = await run("--decode", `${dir}/broken.json`, "--out", `${dir}/bad.svg`);
    assertEquals(broken.code, 2);
    assert(broken.err.includes("broken.json: not valid JSON"), broken.err);
    const both = await run("--decode", "a", "--throughput", "b", "--out", `${dir}/bad.svg`);
    assertEquals(both.code, 2);
    assertEquals((await run("--decode", `${dir}/decode.json`)).code, 2, "--out required");
    assertEquals((await run("--bogus")).code, 2, "unknown flag");
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(
      left,
      ["broken.json", "bad.json", "d.svg", "decode.json", "serve.json", "t.svg"].sort(),
    );
  } finally {
    await cleanup();
  }
});

function unesc(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(
    /&amp;/g,
    "&",
  );
}
