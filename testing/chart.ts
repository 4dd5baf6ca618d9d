/**
 * Benchmark results as SVG pictures, by pure functions (JSON rows in, SVG text out): decode
 * ms/token by model and dtype against the time the measured read bandwidth allows
 * ({@link decodeChart}), and aggregate tokens/s by number of streams ({@link throughputChart}).
 * `bench/chart.ts` is the command around them.
 * @module
 */

/**
 * One `bench/decode.ts --json FILE` row.
 * @example
 * ```ts ignore
 * const row: DecodeRow = {
 *   model: "7-0.1b", dtype: "q8", msPerToken: 5.5, promptTokPerSec: 854,
 *   bandwidthGBs: 30, weightBytesPerToken: 150e6, peakRssMiB: 424,
 * };
 * ```
 */
export interface DecodeRow {
  model: string;
  dtype: string;
  /** Median decode time of one token. */
  msPerToken: number;
  promptTokPerSec: number;
  /** Read bandwidth measured in the same run (GB/s). */
  bandwidthGBs: number;
  /** Bytes of weights one decode step reads. */
  weightBytesPerToken: number;
  peakRssMiB: number;
}

/**
 * One row of the serving benchmark: the server under `streams` concurrent clients.
 * @example
 * ```ts ignore
 * const row: ThroughputRow = {
 *   streams: 4, aggregateTokPerSec: 410, ratio: 2.9, ttftP50Ms: 80, ttftP99Ms: 140,
 *   itlP50Ms: 9, itlP99Ms: 15, peakRssMiB: 600,
 * };
 * ```
 */
export interface ThroughputRow {
  streams: number;
  /** Tokens/s summed over all streams. */
  aggregateTokPerSec: number;
  /** Aggregate over the one-stream rate. */
  ratio: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  itlP50Ms: number;
  itlP99Ms: number;
  peakRssMiB: number;
}

/**
 * A serving benchmark's `--json FILE` result: one model at one dtype.
 * @example
 * ```ts ignore
 * const result: ThroughputResult = { model: "7-0.1b", dtype: "q8", rows: [] };
 * ```
 */
export interface ThroughputResult {
  model: string;
  dtype: string;
  rows: ThroughputRow[];
}

/** A JSON value that is not what a chart needs; the message names the file and field. */
export class ChartInputError extends Error {
  /**
   * @example
   * ```ts
   * throw new ChartInputError("results.json: [0].msPerToken must be a positive number");
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "ChartInputError";
  }
}

type Fields = Record<string, "string" | "number">;

function checkObject(v: unknown, fields: Fields, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ChartInputError(`${where} must be an object`);
  }
  const o = v as Record<string, unknown>;
  for (const [name, type] of Object.entries(fields)) {
    const x = o[name];
    const ok = type === "string"
      ? typeof x === "string" && x.length > 0
      : typeof x === "number" && Number.isFinite(x) && x >= 0;
    if (!ok) {
      const what = type === "string" ? "a non-empty string" : "a finite number ≥ 0";
      throw new ChartInputError(`${where}.${name} must be ${what} (got ${JSON.stringify(x)})`);
    }
  }
  return o;
}

const DECODE_FIELDS: Fields = {
  model: "string",
  dtype: "string",
  msPerToken: "number",
  promptTokPerSec: "number",
  bandwidthGBs: "number",
  weightBytesPerToken: "number",
  peakRssMiB: "number",
};

const THROUGHPUT_FIELDS: Fields = {
  streams: "number",
  aggregateTokPerSec: "number",
  ratio: "number",
  ttftP50Ms: "number",
  ttftP99Ms: "number",
  itlP50Ms: "number",
  itlP99Ms: "number",
  peakRssMiB: "number",
};

/**
 * Checks parsed JSON as `bench/decode.ts --json` rows; `file` names it in errors.
 * @example
 * ```ts ignore
 * const rows = parseDecodeRows(JSON.parse(await Deno.readTextFile("decode.json")), "decode.json");
 * ```
 */
export function parseDecodeRows(json: unknown, file: string): DecodeRow[] {
  if (!Array.isArray(json) || json.length === 0) {
    throw new ChartInputError(`${file}: expected a non-empty array of decode rows`);
  }
  return json.map((r, i) => {
    const o = checkObject(r, DECODE_FIELDS, `${file}: [${i}]`);
    if (!((o.msPerToken as number) > 0)) {
      throw new ChartInputError(`${file}: [${i}].msPerToken must be > 0`);
    }
    return o as unknown as DecodeRow;
  });
}

/**
 * Checks parsed JSON as serving benchmark results (one object, or an array of them).
 * @example
 * ```ts ignore
 * const results = parseThroughput(JSON.parse(await Deno.readTextFile("serve.json")), "serve.json");
 * ```
 */
export function parseThroughput(json: unknown, file: string): ThroughputResult[] {
  const list = Array.isArray(json) ? json : [json];
  if (list.length === 0) throw new ChartInputError(`${file}: expected a result, found []`);
  return list.map((r, i) => {
    const where = Array.isArray(json) ? `${file}: [${i}]` : file;
    const o = checkObject(r, { model: "string", dtype: "string" }, where);
    if (!Array.isArray(o.rows) || o.rows.length === 0) {
      throw new ChartInputError(`${where}.rows must be a non-empty array`);
    }
    const rows = o.rows.map((row, j) =>
      checkObject(row, THROUGHPUT_FIELDS, `${where}.rows[${j}]`) as unknown as ThroughputRow
    );
    return { model: o.model as string, dtype: o.dtype as string, rows };
  });
}

/** Text for an SVG text node or attribute. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A round axis maximum ≥ `v` and its tick step (1, 2 or 5 × 10^k, about five ticks). */
function niceScale(v: number): { max: number; step: number } {
  if (!(v > 0)) return { max: 1, step: 0.2 };
  const raw = v / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  return { max: Math.ceil(v / step - 1e-9) * step, step };
}

/** Few significant digits: 8.7, 16, 0.42, 1034. */
function short(v: number): string {
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1).replace(/\.0$/, "");
  return v.toPrecision(2).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

const f = (v: number) => +v.toFixed(1);
const PALETTE = ["#3b6fd8", "#2a9d62", "#e08a1e", "#9b59b6", "#c0392b", "#16a2b8", "#7f8c8d"];
const DTYPE_ORDER = ["f32", "f16", "bf16", "q8", "q4"];
const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif"`;

function svgOpen(w: number, h: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" ` +
    `viewBox="0 0 ${w} ${h}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600" ` +
    `fill="#222">${esc(title)}</text>`,
  ];
}

/** Horizontal grid lines and y labels from 0 to `max`. */
function yAxis(
  out: string[],
  box: { x0: number; x1: number; y0: number; y1: number },
  scale: { max: number; step: number },
  label: string,
): void {
  const y = (v: number) => box.y1 - (v / scale.max) * (box.y1 - box.y0);
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    out.push(
      `<line x1="${box.x0}" x2="${box.x1}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#ddd"/>`,
      `<text x="${box.x0 - 6}" y="${f(y(v) + 4)}" text-anchor="end" fill="#555">` +
        `${short(+v.toPrecision(6))}</text>`,
    );
  }
  const cy = (box.y0 + box.y1) / 2;
  out.push(
    `<text transform="translate(14 ${f(cy)}) rotate(-90)" text-anchor="middle" fill="#333">` +
      `${esc(label)}</text>`,
    `<line x1="${box.x0}" x2="${box.x1}" y1="${box.y1}" y2="${box.y1}" stroke="#888"/>`,
  );
}

/** A legend row of colour swatches (or dashed lines) from (x, y). */
function legend(out: string[], x: number, y: number, items: [string, string, boolean][]): void {
  for (const [label, color, dashed] of items) {
    out.push(
      dashed
        ? `<line x1="${x}" x2="${x + 18}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" ` +
          `stroke-width="2" stroke-dasharray="4 3"/>`
        : `<rect x="${x}" y="${y - 10}" width="12" height="12" rx="2" fill="${color}"/>`,
      `<text x="${x + (dashed ? 24 : 17)}" y="${y}" fill="#333">${esc(label)}</text>`,
    );
    x += (dashed ? 30 : 24) + label.length * 6.6;
  }
}

/**
 * Decode ms/token as bars grouped by model, one bar per dtype, each with a dashed line at the
 * time that run's measured read bandwidth allows (its weight bytes per token over GB/s). Several
 * rows for one model and dtype (repeated runs) draw the best (lowest ms/token) of them.
 * @example
 * ```ts ignore
 * const svg = decodeChart([{
 *   model: "7-0.1b", dtype: "q8", msPerToken: 5.5, promptTokPerSec: 854,
 *   bandwidthGBs: 30, weightBytesPerToken: 150e6, peakRssMiB: 424,
 * }]);
 * ```
 */
export function decodeChart(rows: readonly DecodeRow[], title = "Decode: ms per token"): string {
  const best = new Map<string, DecodeRow>();
  for (const r of rows) {
    const key = JSON.stringify([r.model, r.dtype]);
    if (!best.has(key) || r.msPerToken < best.get(key)!.msPerToken) best.set(key, r);
  }
  const models = [...new Set(rows.map((r) => r.model))];
  const rank = (d: string) => DTYPE_ORDER.indexOf(d) < 0 ? 99 : DTYPE_ORDER.indexOf(d);
  const dtypes = [...new Set(rows.map((r) => r.dtype))].sort((a, b) => rank(a) - rank(b));
  const floorMs = (r: DecodeRow) => r.weightBytesPerToken / (r.bandwidthGBs * 1e9) * 1000;

  const barW = 40, gap = 6;
  const groupW = dtypes.length * barW + (dtypes.length - 1) * gap;
  const w = Math.max(64 + models.length * (groupW + 40) + 20, 640), h = 356;
  const box = { x0: 64, x1: w - 20, y0: 64, y1: 300 };
  const slot = (box.x1 - box.x0) / models.length; // each model's share of the width
  const top = Math.max(...[...best.values()].flatMap((r) => [r.msPerToken, floorMs(r)]));
  const scale = niceScale(top * 1.08);
  const y = (v: number) => box.y1 - (v / scale.max) * (box.y1 - box.y0);
  const color = (d: string) => PALETTE[dtypes.indexOf(d) % PALETTE.length];

  const out = svgOpen(w, h, title);
  const bws = [...best.values()].map((r) => r.bandwidthGBs);
  const bwText = Math.min(...bws) === Math.max(...bws)
    ? `${short(bws[0])} GB/s`
    : `${short(Math.min(...bws))}–${short(Math.max(...bws))} GB/s`;
  out.push(
    `<text x="${w / 2}" y="40" text-anchor="middle" fill="#666">lower is better · dashed: ` +
      `the weights read once at the bandwidth measured in the run (${esc(bwText)})</text>`,
  );
  yAxis(out, box, scale, "ms per token");
  models.forEach((m, g) => {
    const gx = box.x0 + g * slot + (slot - groupW) / 2;
    dtypes.forEach((d, i) => {
      const r = best.get(JSON.stringify([m, d]));
      if (!r) return;
      const x = gx + i * (barW + gap), top = y(r.msPerToken), fy = y(floorMs(r));
      out.push(
        `<rect class="bar" data-model="${esc(m)}" data-dtype="${esc(d)}" x="${f(x)}" ` +
          `y="${f(top)}" width="${barW}" height="${f(box.y1 - top)}" fill="${color(d)}">` +
          `<title>${esc(`${m} ${d}: ${r.msPerToken} ms/token, ${r.bandwidthGBs} GB/s`)}</title>` +
          `</rect>`,
        `<line class="floor" data-model="${esc(m)}" data-dtype="${esc(d)}" x1="${f(x - 3)}" ` +
          `x2="${f(x + barW + 3)}" y1="${f(fy)}" y2="${f(fy)}" stroke="#222" ` +
          `stroke-width="2" stroke-dasharray="4 3"/>`,
        `<text x="${f(x + barW / 2)}" y="${f(Math.min(top, fy) - 5)}" text-anchor="middle" ` +
          `font-size="11" fill="#222">${short(r.msPerToken)}</text>`,
      );
    });
    out.push(
      `<text x="${f(gx + groupW / 2)}" y="${box.y1 + 18}" text-anchor="middle" ` +
        `font-weight="600" fill="#333">${esc(m)}</text>`,
    );
  });
  legend(out, box.x0, h - 14, [
    ...dtypes.map((d): [string, string, boolean] => [d, color(d), false]),
    ["bandwidth bound", "#222", true],
  ]);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/**
 * Aggregate tokens/s by number of concurrent streams, one line per result (model and dtype),
 * each point labelled with its tokens/s and its ratio to one stream. Streams are spaced evenly
 * in the order measured (1, 2, 4, 8, … read as a log scale).
 * @example
 * ```ts ignore
 * const svg = throughputChart([{ model: "7-0.1b", dtype: "q8", rows: [
 *   { streams: 1, aggregateTokPerSec: 140, ratio: 1, ttftP50Ms: 60, ttftP99Ms: 90,
 *     itlP50Ms: 7, itlP99Ms: 9, peakRssMiB: 500 },
 * ] }]);
 * ```
 */
export function throughputChart(
  results: readonly ThroughputResult[],
  title = "Serving: aggregate tokens/s by concurrent streams",
): string {
  const streams = [...new Set(results.flatMap((r) => r.rows.map((row) => row.streams)))]
    .sort((a, b) => a - b);
  const box = { x0: 64, x1: 0, y0: 64, y1: 300 };
  const stepX = Math.max(70, 480 / Math.max(1, streams.length - 1));
  box.x1 = box.x0 + 30 + Math.max(1, streams.length - 1) * stepX + 30;
  const w = box.x1 + 24, h = 376;
  const scale = niceScale(
    Math.max(...results.flatMap((r) => r.rows.map((row) => row.aggregateTokPerSec))) * 1.12,
  );
  const x = (s: number) => box.x0 + 30 + streams.indexOf(s) * stepX;
  const y = (v: number) => box.y1 - (v / scale.max) * (box.y1 - box.y0);

  const out = svgOpen(w, h, title);
  out.push(
    `<text x="${w / 2}" y="40" text-anchor="middle" fill="#666">higher is better; ` +
      `each point: tokens/s summed over the streams (× its ratio to one stream)</text>`,
  );
  yAxis(out, box, scale, "tokens / s (all streams)");
  for (const s of streams) {
    out.push(
      `<text x="${f(x(s))}" y="${box.y1 + 18}" text-anchor="middle" fill="#333">${s}</text>`,
    );
  }
  out.push(
    `<text x="${f((box.x0 + box.x1) / 2)}" y="${box.y1 + 36}" text-anchor="middle" ` +
      `fill="#333">concurrent streams</text>`,
  );
  results.forEach((r, i) => {
    const color = PALETTE[i % PALETTE.length];
    const rows = [...r.rows].sort((a, b) => a.streams - b.streams);
    const pts = rows.map((row) => `${f(x(row.streams))},${f(y(row.aggregateTokPerSec))}`);
    out.push(
      `<polyline class="series" data-model="${esc(r.model)}" data-dtype="${esc(r.dtype)}" ` +
        `points="${pts.join(" ")}" fill="none" stroke="${color}" stroke-width="2.5"/>`,
    );
    for (const row of rows) {
      const px = f(x(row.streams)), py = f(y(row.aggregateTokPerSec));
      out.push(
        `<circle cx="${px}" cy="${py}" r="4" fill="${color}"><title>${
          esc(
            `${r.model} ${r.dtype}, ${row.streams} streams: ${row.aggregateTokPerSec} tok/s, ` +
              `TTFT p50 ${row.ttftP50Ms} ms, ITL p50 ${row.itlP50Ms} ms`,
          )
        }</title></circle>`,
        `<text x="${px}" y="${f(py - 9)}" text-anchor="middle" font-size="11" fill="#222">` +
          `${short(row.aggregateTokPerSec)} (×${short(row.ratio)})</text>`,
      );
    }
  });
  legend(
    out,
    box.x0,
    h - 14,
    results.map((r, i): [string, string, boolean] => [
      `${r.model} ${r.dtype}`,
      PALETTE[i % PALETTE.length],
      false,
    ]),
  );
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
