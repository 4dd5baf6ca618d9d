/**
 * Samplers on crafted distributions: what is kept, what is cut.
 */
import { argmax, Sampler } from "../lib/sample.ts";
import { UsageError } from "../lib/errors.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));
}

/** Which tokens 3000 draws produce. */
function drawn(s: Sampler, logits: Float32Array, n = 3000): Set<number> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(s.sample(logits));
  return seen;
}

const P = [0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02];
const L = logitsOf(P);
const kept = (s: Sampler) =>
  [...s.distribution(L)].map((p, i) => (p > 0 ? i : -1)).filter((i) => i >= 0);

Deno.test("sampler: temperature 0 is argmax, with bias and penalties applied", () => {
  const s = new Sampler({ temperature: 0 });
  assertEquals(s.sample(L), 0);
  assertEquals(new Sampler({ temperature: 0, logitBias: { 3: 10 } }).sample(L), 3);
  const p = new Sampler({ temperature: 0, presencePenalty: 5 });
  p.accept(0);
  assertEquals(p.sample(L), 1);
  assertEquals(argmax([1, 3, 3, 2]), 1);
});

Deno.test("sampler: top-k, top-p, min-p, top-a, typical keep exactly the expected tokens", () => {
  const base = { topP: 1, seed: 1 };
  assertEquals(kept(new Sampler({ ...base, topK: 2 })), [0, 1]);
  // top-p 0.7: 0.4 + 0.25 = 0.65 < 0.7, + 0.15 = 0.8 ≥ 0.7 → three tokens
  assertEquals(kept(new Sampler({ topP: 0.7, seed: 1 })), [0, 1, 2]);
  assertEquals(kept(new Sampler({ topP: 0.4, seed: 1 })), [0]);
  // min-p 0.3 × 0.4 = 0.12 → 0.4, 0.25, 0.15
  assertEquals(kept(new Sampler({ ...base, minP: 0.3 })), [0, 1, 2]);
  // top-a 1.0 × 0.4² = 0.16 → 0.4, 0.25
  assertEquals(kept(new Sampler({ ...base, topA: 1 })), [0, 1]);
  // typical: tokens nearest the entropy first until the mass is reached
  const typical = kept(new Sampler({ ...base, typicalP: 0.5 }));
  assert(typical.length >= 2 && typical.length < P.length, `typical kept ${typical}`);
  // the draws never leave the kept set, and reach each kept token
  const s = new Sampler({ topP: 0.7, seed: 7 });
  assertEquals([...drawn(s, L)].sort(), [0, 1, 2]);
});

Deno.test("sampler: temperature reshapes the kept distribution as probs ** (1/T)", () => {
  const d = new Sampler({ topP: 1, temperature: 0.5, seed: 1 }).distribution(L);
  const sq = P.map((p) => p * p), z = sq.reduce((a, b) => a + b);
  for (let i = 0; i < P.length; i++) assert(Math.abs(d[i] - sq[i] / z) < 1e-6);
});

Deno.test("sampler: same seed, same choices; another seed, other choices", () => {
  const flat = logitsOf(Array(50).fill(0.02));
  const a = new Sampler({ topP: 1, seed: 42 }), b = new Sampler({ topP: 1, seed: 42 });
  const c = new Sampler({ topP: 1, seed: 43 });
  const ra = Array.from({ length: 40 }, () => a.sample(flat));
  const rb = Array.from({ length: 40 }, () => b.sample(flat));
  const rc = Array.from({ length: 40 }, () => c.sample(flat));
  assertEquals(ra, rb);
  assert(ra.join() !== rc.join());
  a.reset();
  assertEquals(Array.from({ length: 40 }, () => a.sample(flat)), ra);
});

Deno.test("sampler: penalties lower repeated tokens and decay", () => {
  const s = new Sampler({ presencePenalty: 0.5, frequencyPenalty: 1, penaltyDecay: 0.5, topP: 1 });
  s.accept(2);
  s.accept(2);
  const adj = s.adjust(new Float32Array(5));
  // counts: after first accept 1, then decayed to 0.5 and +1 = 1.5 → 0.5 + 1.5 × 1
  assert(Math.abs(adj[2] + 2) < 1e-6, `${adj[2]}`);
  assertEquals(adj[1], 0);
  const r = new Sampler({ repetitionPenalty: 2, topP: 1 });
  r.accept(0);
  r.accept(1);
  const x = r.adjust(Float32Array.from([4, -4, 4]));
  assertEquals([...x], [2, -8, 4]);
});

Deno.test("sampler: logit bias bans and forces tokens", () => {
  const ban = new Sampler({ logitBias: { 0: -Infinity }, topP: 1, seed: 3 });
  assert(!drawn(ban, L).has(0));
  const force = new Sampler({ logitBias: { 6: 100 }, seed: 3 });
  assertEquals([...drawn(force, L, 200)], [6]);
});

Deno.test("sampler: mirostat v2 keeps the draw valid and adapts", () => {
  const s = new Sampler({ mirostat: { tau: 1, eta: 0.5 }, seed: 5 });
  const seen = drawn(s, L, 500);
  for (const t of seen) assert(t >= 0 && t < P.length);
  assert(seen.has(0));
  // a very low target surprise ends up keeping only the top token
  const low = new Sampler({ mirostat: { tau: 0.01, eta: 1 }, seed: 5 });
  for (let i = 0; i < 50; i++) low.sample(L);
  assertEquals([...drawn(low, L, 200)], [0]);
});

Deno.test("sampler: a vocab-sized distribution samples fast paths correctly", () => {
  const V = 65536;
  const logits = new Float32Array(V).map((_, i) => -i / 1000);
  const s = new Sampler({ topP: 0.5, seed: 9 });
  const d = s.distribution(logits);
  let n = 0, mass = 0;
  for (let i = 0; i < V; i++) if (d[i] > 0) (n++, mass += d[i]);
  // p_i ∝ e^(−i/1000): half the mass is in the first ~693 tokens
  assert(n > 650 && n < 740, `kept ${n}`);
  assert(Math.abs(mass - 1) < 1e-4);
  for (let i = 0; i < n; i++) assert(d[i] > 0, "kept tokens are the most likely ones");
});

Deno.test("sampler: out-of-range options are refused", () => {
  assertThrows(() => new Sampler({ topP: 0 }), UsageError, "topP");
  assertThrows(() => new Sampler({ temperature: -1 }), UsageError, "temperature");
  assertThrows(() => new Sampler({ topK: 1.5 }), UsageError, "topK");
});
