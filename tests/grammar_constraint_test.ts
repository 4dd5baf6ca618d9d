/**
 * `Constraint` over real tokenizers (World, Hugging Face GPT-NeoX 20B, bytes): replaying the
 * tokenization of valid documents, every token passes the mask; the end token is allowed only
 * when the output is complete; forced runs, clone, and refusals.
 * @module
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { fixture } from "../testing/fixtures.ts";
import {
  compileGbnf,
  compileJsonSchema,
  Constraint,
  GrammarError,
  jsonObjectGrammar,
} from "../lib/grammar/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import type { Tokenizer } from "../lib/tokenizer/types.ts";

const SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 30 },
    age: { type: "integer", minimum: 0, maximum: 150 },
    tags: { type: "array", items: { type: "string" }, maxItems: 3 },
    note: { type: ["string", "null"] },
  },
  required: ["name", "age"],
  additionalProperties: false,
};
const DOCS = [
  { name: "Alice Johnson", age: 34, tags: ["engineer", "runner"], note: null },
  { name: "Zoë Ñandú 日本 😀", age: 150 },
  { name: 'quote " and \\ backslash\n', age: 0, tags: [], note: "x" },
];

/** Replays `tokens` through a fresh constraint, checking the mask lets each one through. */
function replay(tokenizer: Tokenizer, tokens: number[], endToken: number | null) {
  const c = new Constraint(compileJsonSchema(SCHEMA), tokenizer, { endToken });
  const logits = new Float32Array(Math.max(tokenizer.vocabSize, 65536));
  for (const t of tokens) {
    logits.fill(0);
    c.mask(logits);
    assert(logits[t] === 0, `token ${t} (${JSON.stringify(tokenizer.decode([t]))}) masked`);
    if (endToken !== null) assertEquals(logits[endToken] === 0, c.complete);
    assert(c.allows(t));
    c.accept(t);
  }
  return c;
}

for (
  const [name, file] of [
    ["World", "tokenizers/rwkv_vocab_v20230424.txt"],
    ["GPT-NeoX 20B", "tokenizers/20B_tokenizer.json"],
    ["bytes", "bytes"],
  ] as const
) {
  Deno.test(`constraint: ${name} tokenizations of valid documents pass every mask`, async () => {
    const path = file === "bytes" ? "bytes" : fixture(file);
    if (!path) return;
    const tokenizer = await loadTokenizer(path);
    const end = tokenizer.kind === "bytes" ? null : 0;
    for (const doc of DOCS) {
      for (const text of [JSON.stringify(doc), JSON.stringify(doc, null, 2)]) {
        const c = replay(tokenizer, tokenizer.encode(text), end);
        assert(c.complete && c.finished, text);
        assertEquals(c.completion()?.length, 0);
        if (end !== null) {
          c.accept(end);
          assert(c.finished);
        }
      }
    }
    // a document the schema refuses stops at its first bad token
    const bad = tokenizer.encode('{"name": "x", "age": 151}');
    const c = new Constraint(compileJsonSchema(SCHEMA), tokenizer, { endToken: end });
    let refused = false;
    for (const t of bad) {
      if (!c.allows(t)) {
        const before = c.clone();
        assertThrows(() => c.accept(t), GrammarError, /does not fit the grammar/);
        assertEquals(c.forced(), before.forced()); // unchanged
        refused = true;
        break;
      }
      c.accept(t);
    }
    assert(refused, "age 151 was accepted");
  });
}

Deno.test("constraint: the end token only when complete; forced runs on World tokens", async () => {
  const vocab = fixture("tokenizers/rwkv_vocab_v20230424.txt");
  if (!vocab) return;
  const tokenizer = await loadTokenizer(vocab);
  // a number may always go on: complete but not finished, the end token then allowed
  const num = new Constraint(compileJsonSchema({ type: "integer" }), tokenizer);
  const logits = new Float32Array(65536);
  num.mask(logits);
  assertEquals(logits[0], -Infinity);
  num.accept(tokenizer.encode("12")[0]);
  assert(num.complete && !num.finished);
  logits.fill(1);
  num.mask(logits);
  assertEquals(logits[0], 1);
  assertThrows(() => num.accept(tokenizer.encode("x")[0]), GrammarError);
  // the end token before completion is refused
  const obj = new Constraint(jsonObjectGrammar(), tokenizer);
  assertThrows(() => obj.accept(0), GrammarError, /before the output is complete/);
  // forced: the only way on is the required key, tokenized as the tokenizer would
  const person = new Constraint(
    compileJsonSchema({
      type: "object",
      properties: { firstName: { type: "string" } },
      required: ["firstName"],
      additionalProperties: false,
    }),
    tokenizer,
  );
  assertEquals(person.forced(), []); // a space, or not
  person.accept(tokenizer.encode(" ")[0]);
  assertEquals(person.forced(), tokenizer.encode("{"));
  person.accept(tokenizer.encode("{")[0]);
  assertEquals(person.forced(), []); // whitespace or the key: a choice
  const copy = person.clone();
  person.accept(tokenizer.encode('"')[0]);
  assertEquals(tokenizer.decode(person.forced()), 'firstName"');
  assertEquals(copy.forced(), []); // the clone did not move
  // ids beyond the vocabulary (65530 … 65535) are cut
  const any = new Constraint(compileGbnf("root ::= [a-z]+"), tokenizer);
  logits.fill(0);
  any.mask(logits);
  assert(logits.subarray(tokenizer.vocabSize).every((x) => x === -Infinity));
  assertEquals(logits[tokenizer.encode("hello")[0]], 0);
  assertEquals(logits[tokenizer.encode("Hello")[0]], -Infinity);
});
