/**
 * The loader fuzz suite's cases and runner, shared by `tests/fuzz_test.ts` (a fixed, seeded
 * set that CI runs) and `tests/fuzz_campaign.ts` (longer campaigns). Each case is a file made by a
 * seeded generator for one attack class, run in its own process (`_fuzz_child.ts`) under a
 * wall-clock kill and an RSS watch, with what the reference would do: refuse it (a typed error
 * matching a pattern, naming the file), read it to known bytes, or either (random mutants).
 * @module
 */

import type { CheckpointLimits } from "../lib/formats/checkpoint.ts";
import { fixture } from "../testing/fixtures.ts";
import { crc32 } from "../lib/formats/_crc32.ts";
import {
  concat,
  contiguous,
  type CraftTensor,
  deflateZeros,
  f32,
  legacyFile,
  makeZip,
  Pickle,
  rng,
  rwkvCppFile,
  safetensorsFromText,
  torchZip,
  u32,
} from "./_craft.ts";
import { ggufCases } from "./_fuzz_gguf.ts";
import { torchKeyCases } from "./_fuzz_torch_keys.ts";

/** What the child process printed. */
export interface ChildResult {
  outcome: "ok" | "error" | "untyped";
  format?: string;
  count?: number;
  crcs?: Record<string, number>;
  shapes?: Record<string, (string | number)[]>;
  metadata?: unknown;
  error?: string;
  message?: string;
  /** Open and read time inside the child (wall clock). */
  ms: number;
  /** CPU time (user + system) of opening and reading, in the child. */
  cpuMs: number;
  /** Peak RSS of the child (VmHWM). */
  hwmKiB: number;
}

/** What a case must give. */
export type Expect =
  | { error: RegExp }
  | { ok: (r: ChildResult) => string | undefined }
  | "any";

/** One fuzz case. */
export interface FuzzCase {
  /** Attack class (for the summary). */
  cls: string;
  name: string;
  ext: string;
  make(): Uint8Array | Promise<Uint8Array>;
  expect: Expect;
  limits?: CheckpointLimits;
  /** Run through `loadModel` (the whole load: spec, plan, weights) instead of reading tensors. */
  load?: boolean;
}

/**
 * Acceptance bounds of one case: CPU time (wall time would grow with whatever else shares the
 * machine), peak RSS, and a wall-clock kill that catches a hang.
 */
export const BOUNDS = { cpuMs: 5000, rssKiB: 1024 * 1024, killMs: 60_000 };

/** How one case ran. */
export interface RunOutcome {
  result?: ChildResult;
  killed?: "time" | "rss";
  code: number;
  stderr: string;
  peakKiB: number;
}

const CHILD = new URL("./_fuzz_child.ts", import.meta.url).pathname;

/** Runs the child on `path`, killing it past {@link BOUNDS}.killMs or past the RSS bound. */
export async function runChild(
  path: string,
  limits?: CheckpointLimits,
  load = false,
): Promise<RunOutcome> {
  // -A: the child reads /proc/self/status for its peak RSS (nothing in it runs the file).
  const args = ["run", "--quiet", "--no-prompt", "-A", CHILD, path];
  if (limits || load) args.push(limits ? JSON.stringify(limits) : "");
  if (load) args.push("load");
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .spawn();
  let killed: RunOutcome["killed"];
  let peakKiB = 0;
  const kill = (why: RunOutcome["killed"]) => {
    killed ??= why;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const timer = setTimeout(() => kill("time"), BOUNDS.killMs);
  const watch = setInterval(() => {
    try {
      const s = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0);
      peakKiB = Math.max(peakKiB, rss);
      if (rss > BOUNDS.rssKiB) kill("rss");
    } catch { /* exited */ }
  }, 20);
  try {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
    let result: ChildResult | undefined;
    try {
      result = text ? JSON.parse(text) : undefined;
    } catch { /* crashed mid-line */ }
    if (result) peakKiB = Math.max(peakKiB, result.hwmKiB);
    return {
      result,
      killed,
      code: out.code,
      stderr: new TextDecoder().decode(out.stderr).slice(-2000),
      peakKiB,
    };
  } finally {
    clearTimeout(timer);
    clearInterval(watch);
  }
}

/** Why a run breaks the rules (undefined when it keeps them). */
export function judge(c: FuzzCase, path: string, o: RunOutcome): string | undefined {
  if (o.killed) return `killed (${o.killed}), peak RSS ${o.peakKiB} KiB`;
  const r = o.result;
  if (!r) return `crashed (exit ${o.code}): ${o.stderr}`;
  if (r.outcome === "untyped") return `untyped error: ${r.error}`;
  if (r.cpuMs > BOUNDS.cpuMs) return `took ${r.cpuMs} ms of CPU to open and read`;
  if (o.peakKiB > BOUNDS.rssKiB) return `peak RSS ${o.peakKiB} KiB`;
  if (r.outcome === "error" && !r.message?.includes(path)) {
    return `error does not name the file: ${r.message}`;
  }
  if (c.expect === "any") return undefined;
  if ("error" in c.expect) {
    if (r.outcome !== "error") return `opened, expected an error matching ${c.expect.error}`;
    if (!c.expect.error.test(r.message ?? "")) {
      return `error "${r.message}" does not match ${c.expect.error}`;
    }
    return undefined;
  }
  if (r.outcome !== "ok") return `failed: ${r.message}`;
  return c.expect.ok(r);
}

/** How one case ran, and what a second reader (e.g. torch) said of the same file. */
export interface CaseRun {
  problem?: string;
  outcome: RunOutcome;
  path: string;
  other?: string;
}

/**
 * Writes the case to `dir`, runs it and judges it; `compare`, when given, looks at the same
 * file with another reader before it is removed.
 */
export async function runCase(
  c: FuzzCase,
  dir: string,
  index: number,
  compare?: (c: FuzzCase, path: string, o: RunOutcome) => Promise<string | undefined>,
): Promise<CaseRun> {
  const path = `${dir}/case-${index}.${c.ext}`;
  await Deno.writeFile(path, await c.make());
  try {
    const outcome = await runChild(path, c.limits, c.load);
    const other = compare ? await compare(c, path, outcome) : undefined;
    return { problem: judge(c, path, outcome), outcome, path, other };
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Expectations

/** Opens with exactly these tensors, each holding these float32 values. */
function reads(expected: Record<string, number[]>, meta?: unknown): Expect {
  return {
    ok(r) {
      const names = Object.keys(expected);
      if (JSON.stringify(Object.keys(r.crcs ?? {})) !== JSON.stringify(names)) {
        return `tensors ${Object.keys(r.crcs ?? {})}, expected ${names}`;
      }
      for (const [k, v] of Object.entries(expected)) {
        if (r.crcs![k] !== crc32(f32(v))) return `${k} does not read as [${v.slice(0, 8)}…]`;
      }
      if (meta !== undefined && JSON.stringify(r.metadata) !== JSON.stringify(meta)) {
        return `metadata ${JSON.stringify(r.metadata)}, expected ${JSON.stringify(meta)}`;
      }
      return undefined;
    },
  };
}

/** Opens with `count` tensors. */
function opensWith(count: number): Expect {
  return { ok: (r) => r.count === count ? undefined : `${r.count} tensors, expected ${count}` };
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** Makes cases of one class and file extension. */
const caseOf = (cls: string, ext: string) =>
(
  name: string,
  make: FuzzCase["make"],
  expect: Expect,
  limits?: CheckpointLimits,
): FuzzCase => ({ cls, name, ext, make, expect, limits });

// ---------------------------------------------------------------------------------------------
// Generators, one group per attack class

/** A valid zip .pth of `tensors` over one float32 storage "0" holding 0..n-1. */
function pthOver(
  n: number,
  tensors: Record<string, { shape: number[]; offset?: number; stride?: number[] }>,
  opt: { deflate?: boolean } = {},
) {
  const p = new Pickle().stateDict(
    Object.fromEntries(
      Object.entries(tensors).map(([k, t]) => [k, { key: "0", numel: n, ...t }]),
    ),
  ).done();
  return torchZip(p, { "0": f32(range(n)) }, opt);
}

/** A dict of `entries` built by `body` (pushes keys and values), then STOP; in a deflated zip. */
function pickleZip(body: (p: Pickle) => void, deflate = true): Promise<Uint8Array> {
  const p = new Pickle().op(0x7d);
  body(p);
  return makeZip([{ name: "archive/data.pkl", data: p.done(), deflate }]);
}

/** Many copies of one opcode sequence as a pickle body (built fast). */
function repeated(prefix: number[], unit: number[], times: number, suffix: number[]): Uint8Array {
  const out = new Uint8Array(prefix.length + unit.length * times + suffix.length);
  out.set(prefix);
  const u = Uint8Array.from(unit);
  for (let i = 0; i < times; i++) out.set(u, prefix.length + i * unit.length);
  out.set(suffix, prefix.length + unit.length * times);
  return out;
}

function namingCases(): FuzzCase[] {
  const bigStringKeys = (mib: number, refs: number, keys: number) =>
    pickleZip((p) => {
      p.op(0x58, ...u32(mib * 2 ** 20));
      for (let i = 0; i < mib * 2 ** 20; i++) p.b.push(0x61);
      p.op(0x71, 0, 0x30, 0x28); // BINPUT 0, POP, MARK
      for (let k = 0; k < keys; k++) {
        p.op(0x28);
        for (let i = 0; i < refs; i++) p.op(0x68, 0);
        p.op(0x74).int(k);
      }
      p.op(0x75);
    });
  const dagKey = (k: number, withTensor: boolean) => {
    const p = new Pickle();
    if (withTensor) p.stateDict({ w: { key: "0", numel: 4, shape: [4] } });
    else p.op(0x7d);
    p.op(0x29, 0x72, ...u32(0), 0x30); // () → memo 0
    for (let i = 1; i <= k; i++) {
      p.op(0x6a, ...u32(i - 1), 0x6a, ...u32(i - 1), 0x86, 0x72, ...u32(i));
      if (i < k) p.op(0x30); // only L(k) stays on the stack
    }
    p.op(0x4e, 0x73); // value None, SETITEM
    return torchZip(p.done(), withTensor ? { "0": f32([0, 1, 2, 3]) } : {}, { deflate: true });
  };
  return [
    {
      cls: "key naming",
      name: "1 MiB string × 500 refs as 8 tuple keys",
      ext: "pth",
      make: () => bigStringKeys(1, 500, 8),
      expect: { error: /limits\.nameBytes/ },
    },
    ...[20, 28, 40].flatMap((k) =>
      [false, true].map((t): FuzzCase => ({
        cls: "key naming",
        name: `L${k} = (L${k - 1}, L${k - 1}) as a key${t ? " beside a tensor" : ""}`,
        ext: "pth",
        make: () => dagKey(k, t),
        expect: k === 20 ? "any" : { error: /limits\.nameBytes/ },
      }))
    ),
    {
      cls: "key naming",
      name: "L70 key nests past limits.depth",
      ext: "pth",
      make: () => dagKey(70, true),
      expect: { error: /limits\.depth/ },
    },
    {
      cls: "key naming",
      name: "1 MiB key prefixing 20k tensor names",
      ext: "pth",
      make: () => {
        const p = new Pickle().op(0x7d).str("k".repeat(2 ** 20)).dict().op(0x28);
        for (let i = 0; i < 20_000; i++) p.str(`t${i}`).tensor({ key: "0", numel: 1, shape: [] });
        p.op(0x75, 0x73);
        return torchZip(p.done(), { "0": f32([1]) }, { deflate: true });
      },
      expect: { error: /limits\.nameBytes/ },
    },
  ];
}

function pickleMemoryCases(): FuzzCase[] {
  const mib = 2 ** 20, c = caseOf("pickle memory", "pth");
  const zipOf = (pkl: Uint8Array) => makeZip([{ name: "a/data.pkl", data: pkl, deflate: true }]);
  const memo = (n: number) => {
    const b = new Uint8Array(4 + n * 5);
    b.set([0x80, 2, 0x4e]);
    const v = new DataView(b.buffer);
    for (let i = 0; i < n; i++) (b[3 + i * 5] = 0x72, v.setUint32(4 + i * 5, i, true));
    b[b.length - 1] = 0x2e;
    return zipOf(b);
  };
  // Each just past its budget: 256 MiB of values, 16M opcodes, 64 MiB of pickle.
  return [
    c("4M EMPTY_DICT", () => zipOf(repeated([0x80, 2], [0x7d], 4_000_000, [0x2e])), {
      error: /limits\.pickleMemory/,
    }),
    c("17M DUP", () => zipOf(repeated([0x80, 2, 0x4e], [0x32], 17_000_000, [0x2e])), {
      error: /limits\.(pickleMemory|pickleOps)/,
    }),
    c("12M memo entries", () => memo(12_000_000), { error: /limits\.pickleMemory/ }),
    c("8.1M NONE/POP pairs", () => zipOf(repeated([0x80, 2], [0x4e, 0x30], 8_100_000, [0x2e])), {
      error: /limits\.pickleOps/,
    }),
    c("65 MiB data.pkl", () =>
      makeZip([{
        name: "a/data.pkl",
        data: new Uint8Array(0),
        deflated: { body: deflateZeros(65 * mib), size: 65 * mib, crc: crcOfZerosThen(65 * mib) },
      }]), { error: /limits\.pickleBytes/ }),
    c(
      "400k EMPTY_DICT with limits.pickleMemory lowered to 16 MiB",
      () => zipOf(repeated([0x80, 2], [0x7d], 400_000, [0x2e])),
      { error: /limits\.pickleMemory: .*budget of 16777216/ },
      { pickleMemory: 16 * mib },
    ),
  ];
}

function inflateCases(): FuzzCase[] {
  const c = caseOf("deflated storage", "pth");
  const storage = (elements: number, views: number, garbage = false) => {
    // Zeros, then the floats 1, 2, 3, 4; `views` tensors read those last 4 elements.
    const tail = f32([1, 2, 3, 4]), size = elements * 4;
    const tensors: Record<string, CraftTensor> = {};
    for (let i = 0; i < views; i++) {
      tensors[`v${i}`] = { key: "0", numel: elements, shape: [4], offset: elements - 4 };
    }
    const body = garbage ? new Uint8Array(2 ** 20 + 1).fill(0xaa) : deflateZeros(size - 16, tail);
    return makeZip([
      { name: "a/data.pkl", data: new Pickle().stateDict(tensors).done() },
      { name: "a/version", data: new TextEncoder().encode("3\n") },
      {
        name: "a/data/0",
        data: new Uint8Array(0),
        deflated: { body, size, crc: crcOfZerosThen(size - 16, tail) },
      },
    ]);
  };
  const expected = Object.fromEntries(range(50).map((i) => [`v${i}`, [1, 2, 3, 4]]));
  const gib = 256 * 2 ** 20; // elements
  return [
    c(
      "128 MiB deflated storage, 50 views of its end (inflated once)",
      () => storage(32 * 2 ** 20, 50),
      reads(expected),
    ),
    c("1 GiB deflated storage, 50 views of its end", () => storage(gib, 50), {
      error: /limits\.inflatedBytes/,
    }),
    c("1 GiB declared from 1 MiB of garbage", () => storage(gib, 1, true), {
      error: /limits\.inflatedBytes/,
    }),
    c("1 MiB of garbage declared as 64 MiB", () => storage(16 * 2 ** 20, 1, true), {
      error: /corrupt deflate/,
    }),
    c("ratio past limits.inflateRatio", () => storage(32 * 2 ** 20, 1), {
      error: /limits\.inflateRatio/,
    }, { inflateRatio: 20 }),
  ];
}

const zeroCrcs = new Map<string, number>();
/** CRC-32 of `zeros` zero bytes then `tail`, fed 1 MiB at a time (remembered: it is slow). */
function crcOfZerosThen(zeros: number, tail: Uint8Array = new Uint8Array(0)): number {
  const key = `${zeros}:${tail}`;
  const known = zeroCrcs.get(key);
  if (known !== undefined) return known;
  const block = new Uint8Array(2 ** 20);
  let crc = 0;
  for (let left = zeros; left > 0; left -= block.length) {
    crc = crc32(block.subarray(0, Math.min(left, block.length)), crc);
  }
  crc = crc32(tail, crc);
  zeroCrcs.set(key, crc);
  return crc;
}

function torchSemanticsCases(): FuzzCase[] {
  const c = caseOf("torch semantics", "pth");
  /** A zip of these entries: a name alone is a data.pkl of one tensor "t" of 2 floats. */
  const entries = (list: [string, number[]?][]) => {
    const pkl = new Pickle().stateDict({ t: { key: "0", numel: 2, shape: [2] } }).done();
    return makeZip(list.map(([name, v]) => ({ name, data: v ? f32(v) : pkl })));
  };
  const textOffset = (text: string) =>
    torchZip(
      new Pickle().stateDict({ t: { key: "0", numel: 16, shape: [2], offsetText: text } }).done(),
      { "0": f32(range(16)) },
    );
  const intCases: [string, number | undefined][] = [
    ["010", 8], // strtol base 0: octal
    ["0x3", 3],
    ["1_0", 10], // strtol stops, int(text, 0) reads it
    [" 12", 12],
    ["+5", 5],
    ["0o7", 7],
    ["0b11", 3],
    ["0", 0],
    ["08", undefined], // octal digit 8: strtol stops, int("08", 0) refuses leading zeros
    ["1.5", undefined],
    ["0x", undefined],
    ["1__0", undefined],
    ["", undefined], // CPython: an INT line must hold something ("pickle data was truncated")
    ["L7L", 7], // text LONG: int(text, 0) once the trailing L is dropped
    ["L0x5", 5],
    ["L010", undefined], // int("010", 0) refuses leading zeros (strtol is only for INT)
  ];
  return [
    ...intCases.map(([text, off]): FuzzCase => ({
      cls: "torch semantics",
      name: `text INT ${JSON.stringify(text)} as a storage offset`,
      ext: "pth",
      make: () => textOffset(text),
      expect: off === undefined ? { error: /(INT|LONG) text/ } : reads({ t: [off, off + 1] }),
    })),
    {
      cls: "torch semantics",
      name: "text INT 01 is True, not an int offset",
      ext: "pth",
      make: () => textOffset("01"),
      expect: { error: /bad storage offset/ },
    },
    {
      cls: "torch semantics",
      name: "BUILD re-pointing a tensor",
      ext: "pth",
      make: () => {
        const p = new Pickle().dict().op(0x28).str("t")
          .tensor({ key: "0", numel: 16, shape: [2] });
        // BUILD with a 4-tuple state (storage, offset, size, stride): Tensor.set_ in torch
        p.op(0x28).op(0x4e).int(4).ints([2]).ints([1]).op(0x74, 0x62, 0x75);
        return torchZip(p.done(), { "0": f32(range(16)) });
      },
      expect: { error: /BUILD/ },
    },
    {
      cls: "torch semantics",
      name: "keys 1, True and 1.0 are one key; 0 and False another",
      ext: "pth",
      make: () => {
        const p = new Pickle().dict().op(0x28).str("w").tensor({ key: "0", numel: 2, shape: [2] });
        p.int(1).str("a").op(0x88).str("b").float(1).str("c").op(0x89).str("d").int(0).str("e");
        return torchZip(p.op(0x75).done(), { "0": f32([5, 6]) });
      },
      expect: reads({ w: [5, 6] }, { "1": "c", "False": "e" }),
    },
    c(
      "two data.pkl in two folders",
      () => entries([["a/data.pkl"], ["a/data/0", [1, 2]], ["b/data.pkl"], ["b/data/0", [3, 4]]]),
      {
        error: /2 data\.pkl/,
      },
    ),
    c(
      "the same entry twice",
      () => entries([["a/data.pkl"], ["a/data/0", [1, 2]], ["a/data/0", [3, 4]]]),
      {
        error: /two zip entries/,
      },
    ),
    c("data.pkl two folders deep", () => entries([["a/b/data.pkl"], ["a/b/data/0", [1, 2]]]), {
      error: /no data\.pkl/,
    }),
  ];
}

function manySmallCases(): FuzzCase[] {
  const c = (ext: string) => caseOf("many small entries", ext);
  const safetensorsMany = (n: number, empty = false) => {
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      parts.push(
        empty
          ? `"${i.toString(36)}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`
          : `"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`,
      );
    }
    return safetensorsFromText(`{${parts.join(",")}}`, new Uint8Array(empty ? 0 : n).fill(7));
  };
  const zeroStride = () => {
    const t: Record<string, { shape: number[]; stride: number[] }> = {};
    for (let i = 0; i < 200; i++) t[`v${i}`] = { shape: [16 * 2 ** 20], stride: [0] };
    return pthOver(1, t);
  };
  const cpp = () =>
    rwkvCppFile(
      range(392_000).map((i) => ({
        name: `t${i}`,
        dims: [1],
        data: new Float32Array([i]),
      })),
    );
  return [
    c("bin")("rwkv.cpp file of 392k tiny tensors", cpp, opensWith(392_000)),
    c("safetensors")(
      "SafeTensors header of 400k tensors",
      () => safetensorsMany(400_000),
      opensWith(400_000),
    ),
    c("safetensors")(
      "SafeTensors header of 1.7M tensors (about 88 MB)",
      () => safetensorsMany(1_700_000, true),
      { error: /limits\.tensors/ },
    ),
    c("pth")("200 zero-stride views of 64 MiB", zeroStride, { error: /limits\.viewBytes/ }),
    c("pth")(
      "60k-entry zip with limits.entries lowered to 50k",
      () => makeZip(range(60_000).map((i) => ({ name: `a/x${i}`, data: new Uint8Array(0) }))),
      { error: /limits\.entries/ },
      { entries: 50_000 },
    ),
  ];
}

function rustRulesCases(): FuzzCase[] {
  const st = (header: string, dataLen: number) =>
    safetensorsFromText(header, new Uint8Array(dataLen).fill(1));
  const one = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
  const cases: [string, () => Uint8Array, RegExp | "ok"][] = [
    ["valid", () => st(`{${one}}`, 8), "ok"],
    [
      "valid with trailing spaces and metadata",
      () => st(`{"__metadata__":{"x":"y"},${one}}   `, 8),
      "ok",
    ],
    [
      "unknown field ignored",
      () => st(`{"a":{"dtype":"F32","x":[1,{"y":null}],"shape":[2],"data_offsets":[0,8]}}`, 8),
      "ok",
    ],
    [
      "hole between tensors",
      () => st(`{${one},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}`, 16),
      /hole/,
    ],
    [
      "hole at the start",
      () => st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12),
      /hole/,
    ],
    ["trailing bytes", () => st(`{${one}}`, 9), /trailing bytes/],
    ["duplicate key", () => st(`{${one},${one}}`, 8), /twice/],
    [
      "duplicate field",
      () => st(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8),
      /twice/,
    ],
    ["duplicate metadata key", () => st(`{"__metadata__":{"x":"y","x":"z"},${one}}`, 8), /twice/],
    [
      "4.0 in a shape",
      () => st(`{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, 8),
      /integers/,
    ],
    [
      "4e0 in an offset",
      () => st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}`, 8),
      /integers/,
    ],
    [
      "negative offset",
      () => st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}`, 8),
      /integers/,
    ],
    [
      "three offsets",
      () => st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, 8),
      /begin, end/,
    ],
    ["missing shape", () => st(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, 8), /missing shape/],
    ["metadata value not a string", () => st(`{"__metadata__":{"x":1},${one}}`, 8), /strings/],
    ["leading space", () => st(` {${one}}`, 8), /starting with \{|not a checkpoint/],
    ["text after the object", () => st(`{${one}}x`, 8), /after the JSON/],
    [
      "invalid UTF-8",
      () => concat([[6, 0, 0, 0, 0, 0, 0, 0], [0x7b, 0x22, 0xff, 0x22, 0x7d, 0x20]]),
      /UTF-8/,
    ],
    [
      "header over 100,000,000 bytes",
      () => concat([[0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0], [0x7b]]),
      /limits\.headerBytes/,
    ],
    [
      "overlap",
      () => st(`{${one},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12),
      /overlaps/,
    ],
    [
      "unsupported dtype",
      () => st(`{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}`, 8),
      /not supported/,
    ],
    [
      "control character in a name",
      () => st(`{"a\u0001":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8),
      /control/,
    ],
  ];
  const out: FuzzCase[] = cases.map(([name, make, re]) => ({
    cls: "Rust safetensors rules",
    name,
    ext: "safetensors",
    make,
    expect: re === "ok" ? opensWith(1) : { error: re },
  }));
  // Byte inserts and deletes in the data region shift the data: the reference refuses them.
  const base = () => {
    const h = `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},` +
      `"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}`;
    return safetensorsFromText(h, f32(range(8)));
  };
  for (let seed = 1; seed <= 6; seed++) {
    const r = rng(seed);
    const insert = seed % 2 === 0;
    out.push({
      cls: "Rust safetensors rules",
      name: `single-byte ${insert ? "insert" : "delete"} in the data (seed ${seed})`,
      ext: "safetensors",
      make: () => {
        const b = base(), dataAt = b.length - 32, at = dataAt + Math.floor(r() * 32);
        return insert
          ? concat([b.subarray(0, at), [Math.floor(r() * 256)], b.subarray(at)])
          : concat([b.subarray(0, at), b.subarray(at + 1)]);
      },
      expect: { error: insert ? /trailing bytes/ : /truncated/ },
    });
  }
  return out;
}

function pickleRulesCases(): FuzzCase[] {
  const zipOf = (p: Pickle, storages: Record<string, Uint8Array> = {}) =>
    torchZip(p.done(), storages);
  const tensorWith = (edit: (p: Pickle) => void) => {
    const p = new Pickle().dict().op(0x28).str("t");
    edit(p);
    return zipOf(p.op(0x75), { "0": f32([1, 2, 3, 4]) });
  };
  const rebuild = (
    p: Pickle,
    pid: (p: Pickle) => void,
    offset: (p: Pickle) => void,
    size: (p: Pickle) => void,
  ) => {
    p.global("torch._utils", "_rebuild_tensor_v2").op(0x28, 0x28).str("storage");
    pid(p);
    p.op(0x74, 0x51);
    offset(p);
    p.op(0x28);
    size(p);
    p.op(0x74).ints([1]).op(0x89).dict().op(0x74, 0x52);
  };
  const head = (p: Pickle) => p.global("torch", "FloatStorage").str("0").str("cpu");
  const pid5 = (p: Pickle) => head(p).int(4);
  const withPid = (pid: (p: Pickle) => void) => () =>
    tensorWith((p) => rebuild(p, pid, (p) => p.int(0), (p) => p.int(4)));
  const cases: [string, () => Promise<Uint8Array>, RegExp | "ok"][] = [
    ["valid", () => tensorWith((p) => rebuild(p, pid5, (p) => p.int(0), (p) => p.int(4))), "ok"],
    [
      "float size",
      () => tensorWith((p) => rebuild(p, pid5, (p) => p.int(0), (p) => p.float(4))),
      /non-negative integers/,
    ],
    [
      "float offset",
      () => tensorWith((p) => rebuild(p, pid5, (p) => p.float(0), (p) => p.int(4))),
      /offset/,
    ],
    ["float numel", withPid((p) => head(p).float(4)), /element count/],
    ["persistent id of 4", withPid(head), /persistent id/],
    ["persistent id of 6 in a zip", withPid((p) => (pid5(p), p.op(0x4e))), /persistent id/],
    ["persistent id as a list", () =>
      tensorWith((p) => {
        p.global("torch._utils", "_rebuild_tensor_v2").op(0x28, 0x5d, 0x28).str("storage");
        pid5(p);
        p.op(0x65, 0x51).int(0).ints([4]).ints([1]).op(0x89).dict().op(0x74, 0x52);
      }), /persistent id/],
    [
      "invalid UTF-8 name",
      () => zipOf(new Pickle().dict().op(0x28, 0x8c, 2, 0xc3, 0x28, 0x4e, 0x75)),
      /UTF-8/,
    ],
    [
      "odd SETITEMS",
      () => zipOf(new Pickle().dict().op(0x28).str("a").str("b").str("c").op(0x75)),
      /no value/,
    ],
    ["odd DICT", () => zipOf(new Pickle().op(0x28).str("a").op(0x64)), /no value/],
    [
      "FRAME past the end",
      () => zipOf(new Pickle().op(0x95, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x7d)),
      /FRAME/,
    ],
    ["list as a key", () => zipOf(new Pickle().op(0x7d, 0x5d, 0x4e, 0x73)), /unhashable/],
    [
      "GLOBAL with invalid UTF-8",
      () => zipOf(new Pickle().op(0x63, 0xff, 0x0a, 0x61, 0x0a)),
      /UTF-8/,
    ],
  ];
  const out: FuzzCase[] = cases.map(([name, make, re]) => ({
    cls: "pickle rules",
    name,
    ext: "pth",
    make,
    expect: re === "ok" ? reads({ t: [1, 2, 3, 4] }) : { error: re },
  }));
  out.push({
    cls: "zip rules",
    name: "encrypted storage entry",
    ext: "pth",
    make: () => {
      const p = new Pickle().stateDict({ t: { key: "0", numel: 2, shape: [2] } }).done();
      return makeZip([{ name: "a/data.pkl", data: p }, {
        name: "a/data/0",
        data: f32([1, 2]),
        flags: 1,
      }]);
    },
    expect: { error: /encrypted/ },
  });
  out.push({
    cls: "pickle rules",
    name: "legacy file (persistent ids of 6) reads",
    ext: "pth",
    make: () =>
      legacyFile(
        new Pickle().stateDict({ t: { key: "0", numel: 3, shape: [3], legacyView: null } }).done(),
        [["0", 3, f32([7, 8, 9])]],
      ),
    expect: reads({ t: [7, 8, 9] }),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mutants

/** Seeded mutations of `base`: flips, random bytes, inserts, deletes, truncation, 32-bit values. */
export function mutate(base: Uint8Array, r: () => number): Uint8Array {
  const pos = () => {
    // Headers live at both ends (zip directory at the end, pickles and JSON at the start).
    const x = r();
    if (x < 0.4) return Math.floor(r() * Math.min(base.length, 4096));
    if (x < 0.7) return base.length - 1 - Math.floor(r() * Math.min(base.length, 4096));
    return Math.floor(r() * base.length);
  };
  const b = base.slice();
  const k = Math.floor(r() * 6);
  const p = pos();
  switch (k) {
    case 0:
      b[p] ^= 1 << Math.floor(r() * 8);
      return b;
    case 1:
      b[p] = Math.floor(r() * 256);
      return b;
    case 2:
      return concat([b.subarray(0, p), [Math.floor(r() * 256)], b.subarray(p)]);
    case 3:
      return concat([b.subarray(0, p), b.subarray(p + 1)]);
    case 4:
      return b.subarray(0, p);
    default: {
      const v = [0, 0xffffffff, 0x7fffffff, 0x80000000, 1, 0x10000][Math.floor(r() * 6)];
      new DataView(b.buffer).setUint32(Math.min(p, b.length - 4), v >>> 0, true);
      return b;
    }
  }
}

/**
 * Mutates bytes inside a zip's `data.pkl` and fixes its CRC in both headers, so the mutant
 * reaches the pickle VM instead of failing the CRC check.
 */
export function mutatePickleInZip(zip: Uint8Array, r: () => number): Uint8Array {
  const b = zip.slice(), v = new DataView(b.buffer);
  const eocd = b.length - 22;
  let o = v.getUint32(eocd + 16, true);
  const count = v.getUint16(eocd + 10, true);
  for (let i = 0; i < count; i++) {
    const nameLen = v.getUint16(o + 28, true);
    const name = new TextDecoder().decode(b.subarray(o + 46, o + 46 + nameLen));
    const lho = v.getUint32(o + 42, true);
    if (name.endsWith("data.pkl") && v.getUint16(o + 10, true) === 0) {
      const size = v.getUint32(o + 24, true);
      const start = lho + 30 + v.getUint16(lho + 26, true) + v.getUint16(lho + 28, true);
      const flips = 1 + Math.floor(r() * 3);
      for (let f = 0; f < flips; f++) {
        const at = start + Math.floor(r() * size);
        b[at] = r() < 0.5 ? b[at] ^ (1 << Math.floor(r() * 8)) : Math.floor(r() * 256);
      }
      const crc = crc32(b.subarray(start, start + size));
      v.setUint32(lho + 14, crc, true);
      v.setUint32(o + 16, crc, true);
      return b;
    }
    o += 46 + nameLen + v.getUint16(o + 30, true) + v.getUint16(o + 32, true);
  }
  return b;
}

/** Fixture files mutants are made from (those present). */
export const MUTANT_BASES: string[] = [
  "tiny-rwkv-7v0-bf16.pth",
  "tiny-rwkv-4v0-legacy-f16.pth",
  "tiny-rwkv-7v0.safetensors",
  "rwkv.cpp/tiny-rwkv-4v0-660K-Q5_1.bin",
  "gguf/tiny-rwkv-6v0-Q8_0.gguf",
];

/** `count` seeded mutants of the fixture at `path` (zips also get CRC-fixed pickle mutants). */
export function mutantCases(path: string, count: number, seed: number): FuzzCase[] {
  const ext = path.endsWith(".safetensors")
    ? "safetensors"
    : path.endsWith(".bin")
    ? "bin"
    : path.endsWith(".gguf")
    ? "gguf"
    : "pth";
  let base: Uint8Array | undefined;
  const load = () => base ??= Deno.readFileSync(path);
  return range(count).map((i): FuzzCase => {
    const s = seed * 100_003 + i;
    return {
      cls: "mutants",
      name: `${path.split("/").pop()} mutant ${s}`,
      ext,
      make: () => {
        const b = load(), r = rng(s);
        const zip = b[0] === 0x50 && b[1] === 0x4b;
        return zip && i % 2 === 1 ? mutatePickleInZip(b, r) : mutate(b, r);
      },
      expect: "any",
    };
  });
}

/**
 * A byte flipped in a SafeTensors file's data region: the reference reads the file, and the
 * tensor holding the byte reads with exactly that byte changed.
 */
export function dataFlipCases(count: number, seed: number): FuzzCase[] {
  const names = ["a", "b", "c"];
  const base = () =>
    safetensorsFromText(
      `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},` +
        `"b":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]},` +
        `"c":{"dtype":"F32","shape":[],"data_offsets":[32,36]}}`,
      f32(range(9)),
    );
  return range(count).map((i): FuzzCase => {
    const r = rng(seed * 7919 + i);
    const at = Math.floor(r() * 36), bit = Math.floor(r() * 8);
    const data = f32(range(9));
    data[at] ^= 1 << bit;
    return {
      cls: "Rust safetensors rules",
      name: `byte ${at} of the data flipped`,
      ext: "safetensors",
      make: () => {
        const b = base();
        b[b.length - 36 + at] ^= 1 << bit;
        return b;
      },
      expect: {
        ok(res) {
          const spans = [[0, 16], [16, 32], [32, 36]];
          for (let k = 0; k < 3; k++) {
            const want = crc32(data.subarray(spans[k][0], spans[k][1]));
            if (res.crcs?.[names[k]] !== want) return `${names[k]} does not read the flipped data`;
          }
          return undefined;
        },
      },
    };
  });
}

/** Valid crafted files (views, strides, deflated storages) mutated at random. */
export function craftedMutantCases(count: number, seed: number): FuzzCase[] {
  const bases: (() => Promise<Uint8Array> | Uint8Array)[] = [
    () =>
      pthOver(12, {
        whole: { shape: [3, 4] },
        rows: { shape: [2, 4], offset: 4 },
        t: { shape: [4, 3], stride: [1, 4] },
        b: { shape: [2, 2], stride: [0, 1] },
      }),
    () =>
      pthOver(12, { whole: { shape: [3, 4] }, t: { shape: [4, 3], stride: [1, 4] } }, {
        deflate: true,
      }),
    () =>
      legacyFile(
        new Pickle().stateDict({ t: { key: "0", numel: 3, shape: [3], legacyView: null } })
          .done(),
        [["0", 3, f32([7, 8, 9])]],
      ),
    () =>
      rwkvCppFile([
        { name: "emb.weight", dims: [4, 4], data: new Float32Array(16) },
        { name: "blocks.0.ln1.weight", dims: [4], data: new Float32Array(4) },
      ]),
  ];
  const exts = ["pth", "pth", "pth", "bin"];
  return range(count).map((i): FuzzCase => {
    const k = i % bases.length, s = seed * 31 + i;
    return {
      cls: "mutants",
      name: `crafted ${exts[k]} #${k} mutant ${s}`,
      ext: exts[k],
      make: async () => {
        const b = await bases[k](), r = rng(s);
        return b[0] === 0x50 && i % 3 === 0 ? mutatePickleInZip(b, r) : mutate(b, r);
      },
      expect: "any",
    };
  });
}

/**
 * The tiny RWKV-7 fixture with its SafeTensors header edited (`edit` may change shapes, drop
 * entries or add ones whose bytes it appends to `extra`); offsets are laid out again.
 */
function editedSafetensors(
  base: Uint8Array,
  edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void,
  extra: Record<string, Uint8Array> = {},
): Uint8Array {
  const n = Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(base.subarray(8, 8 + n)));
  const data = base.subarray(8 + n);
  const bytes: Record<string, Uint8Array> = { ...extra };
  for (const [k, v] of Object.entries(h)) {
    if (k === "__metadata__") continue;
    const [a, b] = (v as { data_offsets: number[] }).data_offsets;
    bytes[k] ??= data.subarray(a, b);
  }
  edit(h);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const [k, v] of Object.entries(h)) {
    if (k === "__metadata__") continue;
    const b = bytes[k];
    (v as { data_offsets: number[] }).data_offsets = [at, at + b.length];
    parts.push(b);
    at += b.length;
  }
  return safetensorsFromText(JSON.stringify(h), concat(parts));
}

/**
 * Model shapes that lie, through `loadModel`: layer indices far beyond the tensors present, a
 * gap, an incomplete layer, dimensions that contradict each other or are huge. Each must be
 * refused with a typed error before anything is sized from it (the bounds of every case).
 */
export function modelShapeCases(fixturePath: string): FuzzCase[] {
  const base = () => Deno.readFileSync(fixturePath);
  type H = Parameters<Parameters<typeof editedSafetensors>[1]>[0];
  const ln = { dtype: "F32", shape: [64], data_offsets: [0, 0] };
  const cases: [string, (h: H) => void, RegExp, Record<string, Uint8Array>?][] = [
    ["layer index 100000000", (h) => void (h["blocks.100000000.ln1.weight"] = ln), /layer index/, {
      "blocks.100000000.ln1.weight": new Uint8Array(256),
    }],
    [
      "layer index 2^53 + 1",
      (h) => void (h["blocks.9007199254740993.ln1.weight"] = ln),
      /layer index/,
      { "blocks.9007199254740993.ln1.weight": new Uint8Array(256) },
    ],
    [
      "layer index with a leading zero",
      (h) => {
        h["blocks.01.ln1.weight"] = ln;
      },
      /layer index/,
      { "blocks.01.ln1.weight": new Uint8Array(256) },
    ],
    ["a layer beyond the last", (h) => void (h["blocks.12.ln1.weight"] = ln), /without a gap/, {
      "blocks.12.ln1.weight": new Uint8Array(256),
    }],
    ["a gap", (h) => {
      for (const k of Object.keys(h)) if (k.startsWith("blocks.2.")) delete h[k];
    }, /without a gap: .*blocks\.2\./],
    ["an incomplete layer", (h) => void delete h["blocks.3.att.w1"], /blocks\.3\.att\.w1/],
    ["a core matrix missing everywhere", (h) => {
      for (const k of Object.keys(h)) if (k.endsWith("ffn.value.weight")) delete h[k];
    }, /ffn\.value\.weight/],
    ["a stray tensor in one layer", (h) => void (h["blocks.4.att.extra"] = ln), /no twin/, {
      "blocks.4.att.extra": new Uint8Array(256),
    }],
    ["contradictory FFN width", (h) => {
      h["blocks.2.ffn.key.weight"].shape = [512, 32];
    }, /blocks\.2\.ffn\.key\.weight has shape/],
    ["a low-rank factor unlike its twins", (h) => {
      h["blocks.1.att.w1"].shape = [h["blocks.1.att.w1"].shape[1], h["blocks.1.att.w1"].shape[0]];
    }, /blocks\.1\.att\.w1 has shape/],
    [
      "huge heads (r_k of 2^20 per head)",
      (h) => {
        h["blocks.0.att.r_k"].shape = [1, 1 << 20];
      },
      /shape/,
      { "blocks.0.att.r_k": new Uint8Array(4 << 20) },
    ],
    [
      "an empty embedding of 2^40 columns",
      (h) => {
        h["emb.weight"].shape = [0, 2 ** 40];
      },
      /≥ 1|shape/,
      { "emb.weight": new Uint8Array(0) },
    ],
    ["a head wider than the model", (h) => {
      h["head.weight"].shape = [128, 128];
    }, /head\.weight has shape/],
  ];
  return cases.map(([name, edit, error, extra]) => ({
    cls: "model shapes",
    name,
    ext: "safetensors",
    make: () => editedSafetensors(base(), edit, extra),
    expect: { error },
    load: true,
  }));
}

/** Every crafted attack, one list per class. */
export function attackCases(): FuzzCase[] {
  return [
    ...namingCases(),
    ...pickleMemoryCases(),
    ...inflateCases(),
    ...torchSemanticsCases(),
    ...manySmallCases(),
    ...rustRulesCases(),
    ...pickleRulesCases(),
    ...ggufCases(),
    ...torchKeyCases(),
  ];
}

/** Shapes the crafted generators use (exported for the contiguity helper's users). */
export { contiguous };

/**
 * A campaign: every crafted attack (unless `attacks` is false), then `n` seeded mutants split
 * evenly over the fixtures present, the SafeTensors data flips and the crafted files.
 */
export function campaign(n: number, seed: number, attacks = true): FuzzCase[] {
  const bases = MUTANT_BASES.map((b) => fixture(b)).filter((p): p is string => p !== undefined);
  const per = Math.floor(n / (bases.length + 2));
  return [
    ...(attacks ? attackCases() : []),
    ...bases.flatMap((p) => mutantCases(p, per, seed)),
    ...dataFlipCases(per, seed),
    ...craftedMutantCases(n - per * (bases.length + 1), seed),
  ];
}

/**
 * Runs `cases` `jobs` at a time in a temporary folder (removed at the end), calling `seen` with
 * each case, its index and how it ran.
 */
export async function runPool(
  cases: FuzzCase[],
  jobs: number,
  seen: (c: FuzzCase, i: number, r: CaseRun) => void,
  compare?: Parameters<typeof runCase>[3],
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rwkv-fuzz-" });
  let next = 0;
  try {
    await Promise.all(Array.from({ length: jobs }, async () => {
      while (next < cases.length) {
        const i = next++;
        seen(cases[i], i, await runCase(cases[i], dir, i, compare));
      }
    }));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * torch's reading of a `.pth` (torch 1.13 from Debian's python3-torch, when installed), for
 * campaigns that compare: `torch.load` through an unpickler that refuses every global outside
 * our allow-list (so a mutant can never run anything), then the state dict unwrapped and
 * flattened as our reader does, each tensor's bytes as a CRC-32.
 */
const TORCH_ORACLE = `
import io, json, pickle, sys, zlib, collections
import torch
ALLOWED = {("collections", "OrderedDict"), ("_codecs", "encode")} | {
  ("torch._utils", n) for n in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                                 "_rebuild_parameter_with_state")} | {
  ("torch._tensor", "_rebuild_from_type_v2"), ("torch.nn.parameter", "Parameter"),
  ("torch", "Tensor"), ("torch", "Size")} | {("torch", n) for n in dir(torch) if
  n.endswith("Storage") or isinstance(getattr(torch, n, None), torch.dtype)}
class Unpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in ALLOWED:
      raise pickle.UnpicklingError(f"refused {module}.{name}")
    return super().find_class(module, name)
class Module:
  Unpickler = Unpickler
  @staticmethod
  def load(f, **kw):
    return Unpickler(f, **kw).load()
out = {}
try:
  obj = torch.load(sys.argv[1], map_location="cpu", pickle_module=Module)
  for _ in range(3):
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
      inner = next((obj[k] for k in ("state_dict", "model", "module")
                    if isinstance(obj.get(k), dict)), None)
      if inner is None: break
      obj = inner
  crcs = {}
  def walk(d, prefix, depth):
    for k, v in d.items():
      if torch.is_tensor(v):
        b = v.detach().contiguous().flatten().view(torch.uint8).numpy().tobytes()
        crcs[prefix + str(k)] = zlib.crc32(b)
      elif isinstance(v, dict) and depth < 4:
        walk(v, prefix + str(k) + ".", depth + 1)
  if isinstance(obj, dict): walk(obj, "", 0)
  out = {"outcome": "ok", "crcs": crcs}
except BaseException as e:
  out = {"outcome": "error", "message": f"{type(e).__name__}: {e}"[:500]}
print(json.dumps(out))
`;

/** torch's outcome for `path`, or undefined when python3 with torch is not installed. */
export async function torchReads(
  path: string,
): Promise<
  { outcome: "ok" | "error"; crcs?: Record<string, number>; message?: string } | undefined
> {
  try {
    // Debian's interpreter, which sees python3-torch (a pyenv or venv python3 may not).
    const python = Deno.env.get("RWKV_TORCH_PYTHON") ?? "/usr/bin/python3";
    const child = new Deno.Command(python, {
      args: ["-c", TORCH_ORACLE, path],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // torch itself hangs on some attacks (hashing a key of 2^40 tuples): give it 30 s.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, 30_000);
    const r = await child.output().finally(() => clearTimeout(timer));
    if (timedOut) return { outcome: "error", message: "torch did not finish in 30 s" };
    const line = new TextDecoder().decode(r.stdout).trim().split("\n").pop();
    return line ? JSON.parse(line) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Compares our reading of a `.pth` with torch's: "agree", "refused (torch reads it: …)" for a
 * file we refuse on purpose (a budget, BUILD, duplicates), or "DIFFERS: …" when we read what
 * torch refuses or read other bytes. Undefined for other formats or without torch.
 */
export async function compareWithTorch(
  c: FuzzCase,
  path: string,
  o: RunOutcome,
): Promise<string | undefined> {
  if (c.ext !== "pth" || !o.result || o.result.outcome === "untyped") return undefined;
  const t = await torchReads(path);
  if (!t) return undefined;
  const ours = o.result;
  if (ours.outcome === "error") {
    return t.outcome === "error" ? "agree" : `refused (torch reads it): ${ours.message}`;
  }
  if (t.outcome === "error") return `DIFFERS: we read it, torch says ${t.message}`;
  if (!ours.crcs) return "agree"; // too many tensors to list
  const a = Object.keys(ours.crcs).sort(), b = Object.keys(t.crcs ?? {}).sort();
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    return `DIFFERS: tensors [${a.slice(0, 5)}…] vs torch [${b.slice(0, 5)}…]`;
  }
  const bad = a.filter((k) => ours.crcs![k] !== t.crcs![k]);
  return bad.length ? `DIFFERS: bytes of ${bad.slice(0, 5).join(", ")}` : "agree";
}
