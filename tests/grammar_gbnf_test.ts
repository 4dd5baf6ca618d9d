/**
 * GBNF parsing and matching: the grammar engine against strings, byte by byte, and its errors.
 * @module
 */

import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import { compileGbnf, Constraint, type Grammar, GrammarError } from "../lib/grammar/mod.ts";
import { ByteTokenizer } from "../lib/tokenizer/bytes.ts";
import { generate, generateBatch, type GenerateStats } from "../lib/generate.ts";
import { loadModel } from "../lib/load.ts";
import { UsageError } from "../lib/errors.ts";
import { fixture } from "../testing/fixtures.ts";

const bytes = new ByteTokenizer();
const utf8 = new TextEncoder();

/** "no" (rejected), "prefix", "complete" or "final" (complete, nothing may follow). */
function match(g: Grammar, text: string): string {
  const c = new Constraint(g, bytes);
  for (const b of utf8.encode(text)) {
    if (!c.allows(b)) return "no";
    c.accept(b);
  }
  return c.finished ? "final" : c.complete ? "complete" : "prefix";
}

Deno.test("gbnf: literals, classes, repetition, alternation, groups", () => {
  const g = compileGbnf(`
# a comment
root ::= "a" [b-d]* ( "x" | "é" )? tail   # trailing comment
tail ::= [0-9]{2,3} | "-"
`);
  const cases: [string, string][] = [
    ["a", "prefix"],
    ["a-", "final"],
    ["abcdx-", "final"],
    ["aé12", "complete"],
    ["aé123", "final"],
    ["aé1234", "no"],
    ["ae", "no"],
    ["ax1", "prefix"],
    ["b", "no"],
  ];
  for (const [text, want] of cases) assertEquals(match(g, text), want, text);
});

Deno.test("gbnf: negated classes and '.' over multi-byte UTF-8", () => {
  const g = compileGbnf(`root ::= [^"\\n] . [ぁ-ゟ]+ "\\u00e9" "\\x41"`);
  assertEquals(match(g, "a€ぁゟéA"), "final");
  assertEquals(match(g, "😀\nあéA"), "final");
  assertEquals(match(g, '"xあéA'), "no");
  assertEquals(match(g, "\nxあéA"), "no");
  assertEquals(match(g, "ab" + "ア"), "no"); // katakana is outside the range
  // a truncated multi-byte character is a prefix, never complete
  const c = new Constraint(compileGbnf("root ::= [ぁ-ゟ]"), bytes);
  c.accept(0xe3);
  assert(!c.complete && !c.finished);
  // invalid UTF-8 never matches '.'
  const dot = new Constraint(compileGbnf("root ::= ."), bytes);
  assert(!dot.allows(0xff) && !dot.allows(0x80) && !dot.allows(0xc0));
});

Deno.test("gbnf: recursion, newline rules, {m}, {m,}", () => {
  const g = compileGbnf(`root ::= expr
expr ::= term ("+" term)*
term ::= [0-9]+ |
  "(" expr ")"
`);
  assertEquals(match(g, "(1+(2+3))+4"), "complete");
  assertEquals(match(g, "((1)"), "prefix");
  assertEquals(match(g, "1+)"), "no");
  const r = compileGbnf('root ::= "a"{3} "b"{2,}');
  assertEquals(match(r, "aaab"), "prefix");
  assertEquals(match(r, "aaabbbbb"), "complete");
  assertEquals(match(r, "aab"), "no");
});

Deno.test("gbnf: forced bytes and the end", () => {
  const g = compileGbnf('root ::= "hello" ( " world" | "!" )');
  const c = new Constraint(g, bytes);
  assertEquals(String.fromCharCode(...c.forced()), "hello");
  for (const t of c.forced()) c.accept(t);
  assertEquals(c.forced(), []);
  c.accept(33);
  assert(c.complete && c.finished);
  const logits = new Float32Array(256);
  c.mask(logits);
  assert(logits.every((x) => x === -Infinity));
});

Deno.test("gbnf: errors name line:col", () => {
  const cases: [string, RegExp][] = [
    ['root ::= "a" missing', /line 1:14: undefined rule "missing"/],
    ['root ::= "a\nb"', /line 1:10: unterminated string/],
    ["root ::= [a-", /line 1:10: unterminated character class/],
    ['root ::= ("a"', /line 1:10: expected "\)"/],
    ['rule ::= "a"', /no rule "root"/],
    ['root ::= "a"\nroot ::= "b"', /line 2:1: rule "root" is defined twice/],
    ['root ::= root "a" | "b"', /left recursion through rule "root"/],
    ['root ::= ("a"?)*', /left recursion/],
    ['root ::= "a"{3,2}', /line 1:13: repetition/],
    ['root ::= "\\q"', /line 1:11: unknown escape/],
    ["root ::= <think>", /token references/],
    ['root = "a"', /line 1:6: expected "::="/],
    ["root ::= [z-a]", /reversed/],
  ];
  for (const [text, re] of cases) assertThrows(() => compileGbnf(text), GrammarError, re);
});

Deno.test("gbnf: generate() follows a grammar given as text or compiled, greedy and sampled", async () => {
  const path = fixture("tiny-rwkv-7v0-bf16.pth");
  if (!path) return;
  const model = await loadModel(path, { threads: 1 });
  try {
    const text = 'root ::= "Answer: " ( "yes" | "no" | [0-9]{1,3} ) "."';
    const done: GenerateStats[] = [];
    for (const grammar of [text, compileGbnf(text)]) {
      for (const temperature of [0, 1]) {
        let out = "";
        const tokens: number[] = [];
        for await (
          const piece of generate(model, bytes, "Q: ", {
            grammar,
            temperature,
            seed: 3,
            maxTokens: 40,
            onToken: (t) => tokens.push(t),
            onStats: (s) => done.push(s),
          })
        ) out += piece;
        assert(/^Answer: (yes|no|[0-9]{1,3})\.$/.test(out), JSON.stringify(out));
        assertEquals(new TextDecoder().decode(Uint8Array.from(tokens)), out);
      }
    }
    assert(done.every((s) => s.complete === true && s.stopReason === "end-of-text"));
    // cut short: incomplete, stop reason "length"
    const [cut] = await generateBatch(model, bytes, [{
      prompt: "Q: ",
      grammar: text,
      maxTokens: 3,
    }]);
    assertEquals(cut.text, "Ans");
    assertEquals([cut.stats.complete, cut.stats.stopReason], [false, "length"]);
    await assertRejects(
      () => generate(model, bytes, "Q: ", { grammar: text, jsonSchema: {} }).next(),
      UsageError,
      /not both/,
    );
  } finally {
    await model.dispose();
  }
});
