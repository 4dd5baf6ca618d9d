/**
 * The JSON-Schema suite of constrained decoding: 33 schemas (tests/grammar_schemas.ts), each
 * generated greedily (streamed, `generate`) and sampled (six seeds, `generateBatch`, some cut
 * short by `maxTokens`) on a tiny trained byte-level model and on a random-weight RWKV-7 with
 * the World vocabulary; every output is checked with Ajv (a real JSON-Schema validator): a
 * complete one as it is, an incomplete one (stop reason "length", `complete: false`) after the
 * grammar's shortest completion. Every generated token is replayed through a fresh
 * `Constraint` (so each was allowed). Model-free: random walks through every schema's grammar
 * validate too, the string formats accept their edge cases and refuse what Ajv refuses, and
 * invalid schemas throw a GrammarError naming the path.
 * @module
 */

import * as ajv2020Module from "ajv/dist/2020.js";
import * as ajvModule from "ajv";
import * as formatsModule from "ajv-formats";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { makeModel } from "./_with.ts";
import { SCHEMAS } from "./grammar_schemas.ts";
import { compileJsonSchema, Constraint, GrammarError } from "../lib/grammar/mod.ts";
import { generate, generateBatch, type GenerateStats } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import type { Model } from "../lib/model/model.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import { ByteTokenizer } from "../lib/tokenizer/bytes.ts";
import { makeRng } from "../lib/sample.ts";
import type { Tokenizer } from "../lib/tokenizer/types.ts";

type Validate = ((x: unknown) => boolean) & { errors?: unknown };
interface AjvLike {
  compile(schema: unknown): Validate;
}
// The CommonJS modules' default exports, whichever way the npm layer hands them over.
const unwrap = <T>(m: unknown): T => {
  const d = (m as { default?: unknown }).default;
  return ((d as { default?: unknown })?.default ?? d ?? m) as T;
};
type AjvClass = new (options: Record<string, unknown>) => AjvLike;
const addFormats = unwrap<(ajv: AjvLike) => void>(formatsModule);
const ajv2020 = new (unwrap<AjvClass>(ajv2020Module))({ strict: false });
addFormats(ajv2020);
const ajv7 = new (unwrap<AjvClass>(ajvModule))({ strict: false });
addFormats(ajv7);
const validators = SCHEMAS.map((s): Validate => (s.draft7 ? ajv7 : ajv2020).compile(s.schema));

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Checks one output; returns whether it was complete. */
function check(
  where: string,
  i: number,
  tokenizer: Tokenizer,
  text: string,
  tokens: number[],
  stats: GenerateStats,
): boolean {
  const c = new Constraint(compileJsonSchema(SCHEMAS[i].schema), tokenizer, {
    endToken: tokenizer.kind === "bytes" ? null : 0,
  });
  for (const t of tokens) c.accept(t); // throws if a token was not allowed
  assertEquals(stats.complete, c.complete, `${where}: stats.complete`);
  const rest = c.completion();
  assert(rest !== undefined, `${where}: no completion of ${JSON.stringify(text)}`);
  const produced = tokenizer.decodeBytes(tokens);
  const full = new Uint8Array(produced.length + rest.length);
  full.set(produced);
  full.set(rest, produced.length);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(full));
  } catch (e) {
    throw new Error(`${where}: not JSON: ${JSON.stringify(utf8.decode(full))} (${e})`);
  }
  const ok = validators[i](value);
  assert(
    ok,
    `${where}: ${JSON.stringify(value)} fails the schema: ${JSON.stringify(validators[i].errors)}`,
  );
  if (c.complete) {
    assertEquals(rest.length, 0);
    assertEquals(JSON.stringify(JSON.parse(text)), JSON.stringify(value), `${where}: text`);
    assert(stats.stopReason !== "abort" && stats.stopReason !== "stop", where);
  } else {
    assertEquals(stats.stopReason, "length", `${where}: incomplete but ${stats.stopReason}`);
  }
  return c.complete;
}

async function suite(label: string, model: Model, tokenizer: Tokenizer, prompt: string) {
  let runs = 0, complete = 0;
  for (const [i, s] of SCHEMAS.entries()) {
    // greedy, streamed
    const tokens: number[] = [];
    let text = "";
    const it = generate(model, tokenizer, prompt, {
      jsonSchema: s.schema,
      temperature: 0,
      maxTokens: 48,
      onToken: (t) => tokens.push(t),
    });
    let r = await it.next();
    for (; !r.done; r = await it.next()) text += r.value;
    if (check(`${label} greedy "${s.name}"`, i, tokenizer, text, tokens, r.value)) complete++;
    runs++;
    // sampled: six seeds, half of them cut short
    const seeds = [1, 2, 3, 4, 5, 6];
    const got = seeds.map(() => [] as number[]);
    const results = await generateBatch(
      model,
      tokenizer,
      seeds.map((seed, k) => ({
        prompt,
        jsonSchema: s.schema,
        seed,
        temperature: 1,
        topK: 50,
        topP: 0.95,
        presencePenalty: 0.2,
        maxTokens: k % 2 ? 6 : 64,
        onToken: (t: number) => got[k].push(t),
      })),
    );
    for (const [k, res] of results.entries()) {
      assertEquals(res.tokens, got[k]);
      const where = `${label} seed ${seeds[k]} "${s.name}"`;
      if (check(where, i, tokenizer, res.text, res.tokens, res.stats)) complete++;
      runs++;
    }
  }
  console.log(`${label}: ${runs} generations, ${complete} complete, all valid`);
  assert(complete >= runs / 4, `${label}: only ${complete} of ${runs} complete`);
  return runs;
}

Deno.test("grammar: the schema suite on a tiny byte-level RWKV-7 (tiny-rwkv-7v0-bf16.pth)", async () => {
  const path = fixture("tiny-rwkv-7v0-bf16.pth");
  if (!path) return;
  const model = await loadModel(path, { threads: 1 });
  try {
    const runs = await suite("tiny-7v0", model, await loadTokenizer("bytes"), "JSON: ");
    assert(runs >= 180);
  } finally {
    await model.dispose();
  }
});

Deno.test("grammar: the schema suite on a random RWKV-7 with the World vocabulary", async () => {
  const vocab = fixture("tokenizers/rwkv_vocab_v20230424.txt");
  if (!vocab) return;
  const { dir, cleanup } = await tempDir();
  try {
    const path = `${dir}/world-r7.safetensors`;
    await makeModel(path, ["--version", "7", "--layers", "1", "--embd", "64", "--vocab", "65536"]);
    const model = await loadModel(path, { threads: 1 });
    try {
      const tokenizer = await loadTokenizer(vocab);
      const runs = await suite("world-r7", model, tokenizer, "User: answer in JSON\n\nAssistant:");
      assert(runs >= 180);
    } finally {
      await model.dispose();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("grammar: random walks through every schema's grammar give valid JSON (Ajv)", () => {
  // Model-free: random allowed bytes (UTF-8 included), ending at a random complete point or
  // through the shortest completion; every string must validate.
  const bytes = new ByteTokenizer();
  const rng = makeRng(7);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const logits = new Float32Array(256);
  for (const [i, s] of SCHEMAS.entries()) {
    const grammar = compileJsonSchema(s.schema);
    for (let walk = 0; walk < 40; walk++) {
      const c = new Constraint(grammar, bytes);
      const out: number[] = [];
      const budget = 20 + Math.floor(rng() * 200);
      while (!c.finished && out.length < budget && !(c.complete && rng() < 0.2)) {
        logits.fill(0);
        c.mask(logits);
        const allowed = [...logits.keys()].filter((b) => logits[b] === 0);
        const b = allowed[Math.floor(rng() * allowed.length)];
        c.accept(b);
        out.push(b);
      }
      out.push(...c.completion()!);
      const text = decoder.decode(Uint8Array.from(out));
      const value = JSON.parse(text);
      assert(
        validators[i](value),
        `"${s.name}": ${text} fails: ${JSON.stringify(validators[i].errors)}`,
      );
    }
  }
});

Deno.test("grammar: formats accept their edge cases and refuse what Ajv refuses", () => {
  const bytes = new ByteTokenizer();
  const cases: Record<string, [string, boolean][]> = {
    date: [["2024-12-31", true], ["2023-02-28", true], ["2023-02-29", false], [
      "2024-04-31",
      false,
    ]],
    time: [["23:59:59Z", true], ["00:00:00.5+05:30", true], ["24:00:00Z", false], [
      "12:00:00",
      false,
    ]],
    "date-time": [["2024-01-01T12:30:00Z", true], ["2024-01-01 12:30:00Z", false]],
    uuid: [["123e4567-e89b-12d3-a456-426614174000", true], ["123e4567e89b", false]],
    email: [["a.b+c@ex-ample.co.uk", true], ["a..b@x.io", false], ["a@b", false], ["-@x.io", true]],
    hostname: [["a-b.example.com", true], ["-ab.com", false], ["ab-.com", false]],
    ipv4: [["255.255.255.255", true], ["0.10.100.199", true], ["256.1.1.1", false], [
      "01.1.1.1",
      false,
    ]],
    uri: [["https://example.com/a/b?x=1&y=2", true], ["http://a", true], ["ftp://a.b", false]],
  };
  for (const [format, list] of Object.entries(cases)) {
    const schema = { type: "string", format };
    const validate = ajv2020.compile(schema);
    for (const [text, want] of list) {
      const ok = acceptsJson(new Constraint(compileJsonSchema(schema), bytes), text);
      assertEquals(ok, want, `${format}: ${text}`);
      if (ok) assert(validate(text), `${format}: ${text} accepted but Ajv refuses it`);
    }
  }
});

/** Whether `c` takes the JSON text of `value` byte by byte and ends complete. */
function acceptsJson(c: Constraint, value: string): boolean {
  for (const b of new TextEncoder().encode(JSON.stringify(value))) {
    if (!c.allows(b)) return false;
    c.accept(b);
  }
  return c.complete;
}

Deno.test("grammar: a pattern's grammar accepts exactly the strings its RegExp matches whole", () => {
  const bytes = new ByteTokenizer();
  const cases: [string, string[]][] = [
    ["^[A-Z]{2}-\\d{3,4}$", ["AB-123", "AB-1234", "AB-12345", "ab-123", "A-123"]],
    ["(foo|ba[rz])+", ["foo", "foobarbaz", "", "fooba", "bax"]],
    ['a"b\\\\c', ['a"b\\c', 'a"bc', "ab\\c"]],
    ["[^a-z\\s]*", ["ABC1", "", "AbC", "A B", 'Q"\\', "é€😀"]],
    [".{2}", ["é€", "\n1", '\\"', "\t\b", "abc"]],
    ["x?y*z+", ["z", "xyyz", "xz", "xx", "yyy"]],
    ["(?:\\w+)@(?<d>[\\w.-]+)\\.com", ["a_1@b-c.d.com", "@b.com", "a@b.org"]],
    ["[\\u00e0-\\u00ff\\x41]{1,2}", ["é", "Aà", "B", "ÿÿÿ"]],
  ];
  for (const [pattern, strings] of cases) {
    const grammar = compileJsonSchema({ type: "string", pattern });
    const re = new RegExp(`^(?:${pattern.replace(/^\^/, "").replace(/\$$/, "")})$`, "u");
    for (const text of strings) {
      const ok = acceptsJson(new Constraint(grammar, bytes), text);
      // control characters other than \t \n \r \b \f are left out (a subset): none here
      assertEquals(ok, re.test(text), `${pattern} on ${JSON.stringify(text)}`);
    }
  }
});

Deno.test("grammar: invalid schemas throw a GrammarError naming the path and keyword", () => {
  const cases: [unknown, RegExp][] = [
    [{ type: "string", not: {} }, /JSON Schema #\/not: unsupported keyword "not"/],
    [
      { type: "object", properties: { a: { type: "strin" } } },
      /#\/properties\/a\/type: unknown type "strin"/,
    ],
    [{ type: "array", uniqueItems: true }, /#\/uniqueItems: uniqueItems is not supported/],
    [{ type: "number", minimum: 0.2, maximum: 0.8 }, /#\/minimum: no value lies within the bounds/],
    [{ type: "number", exclusiveMinimum: true }, /#\/exclusiveMinimum: a boolean exclusive bound/],
    [{ $ref: "#/$defs/missing" }, /#\/\$ref: cannot resolve #\/\$defs\/missing/],
    [{ enum: [] }, /#\/enum: enum must be a non-empty array/],
    [{ type: "array", minItems: -1 }, /#\/minItems: minItems must be a whole number/],
    [{ properties: { a: { multipleOf: 2 } } }, /#\/properties\/a\/multipleOf: unsupported keyword/],
    [{ $ref: "https://example.com/s.json" }, /#\/\$ref: only local references/],
    [false, /JSON Schema #: the schema false allows no value/],
    [{ anyOf: [false, false] }, /#\/anyOf: every branch is false/],
    [{ properties: { a: false }, required: ["a"] }, /#\/properties\/a: the schema false allows/],
    [{ type: "string", format: "ipv6" }, /#\/format: unsupported format "ipv6"/],
    [{ type: "integer", minimum: 5, maximum: 4 }, /#\/minimum: no value lies within/],
    [{ type: "array", items: false, minItems: 1 }, /#\/minItems: minItems 1 is more than/],
    [{ anyOf: [{ type: "integer" }], type: "string" }, /#\/type: "type" beside "anyOf"/],
    [
      { type: "object", properties: { "a/b": { type: "string", pattern: "(?=x)" } } },
      /#\/properties\/a~1b\/pattern: lookaround is not supported at offset 1/,
    ],
    [{ type: "string", pattern: "(a)\\1" }, /#\/pattern: backreferences are not supported/],
    [{ type: "string", pattern: "a", maxLength: 3 }, /#\/pattern: pattern beside/],
    [{ type: "string", maxLength: 2, minLength: 3 }, /#\/minLength: minLength is above maxLength/],
    ["string", /#: a schema must be an object or a boolean/],
    [
      { enum: ["a", "bb"], maxLength: 1 },
      /#\/maxLength: "maxLength" beside "enum" is not supported/,
    ],
    [{ type: "integer", format: "int32" }, /#\/format: unsupported format "int32" on type integer/],
    [{ const: 3, enum: [1, 2] }, /#\/const: const is not among the enum values/],
    [{ type: "string", enum: [1, null] }, /#\/type: no enum value is of this type/],
  ];
  for (const [schema, re] of cases) assertThrows(() => compileJsonSchema(schema), GrammarError, re);
});
