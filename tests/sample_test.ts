/**
 * Samplers on crafted distributions: what each filter keeps and cuts, checked both on the
 * distribution and by seeded draws; the fast paths against a plain full-sort reference.
 */
import { argmax, makeRng, Sampler, type SamplerOptions } from "../lib/sample.ts";
import { UsageError } from "../lib/errors.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));
}

/** How often each token comes out of `n` draws (the sampler does not accept them). */
function histogram(s: Sampler, logits: Float32Array, n = 2000): Map<number, number> {
  const seen = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const t = s.sample(logits);
    seen.set(t, (seen.get(t) ?? 0) + 1);
  }
  return seen;
}

const P = [0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02];
const L = logitsOf(P);

/** Tokens the distribution keeps. */
const kept = (options: SamplerOptions, logits = L) =>
  [...new Sampler(options).distribution(logits)].flatMap((p, i) => (p > 0 ? [i] : []));

/** Checks that 2000 seeded draws produce every kept token and no other. */
function drawsMatch(options: SamplerOptions, expected: number[], logits = L): void {
  const seen = [...histogram(new Sampler({ seed: 11, ...options }), logits).keys()];
  assertEquals(seen.sort((a, b) => a - b), expected, JSON.stringify(options));
}

Deno.test("sampler: temperature 0 is argmax, after bias and penalties", () => {
  assertEquals(new Sampler({ temperature: 0 }).sample(L), 0);
  assertEquals(new Sampler({ temperature: 0, logitBias: { 3: 10 } }).sample(L), 3);
  const p = new Sampler({ temperature: 0, presencePenalty: 5 });
  p.accept(0);
  assertEquals(p.sample(L), 1);
  assertEquals(argmax([1, 3, 3, 2]), 1);
  assertEquals([...new Sampler({ temperature: 0 }).distribution(L)], [1, 0, 0, 0, 0, 0, 0]);
});

Deno.test("sampler: each filter keeps exactly the expected tokens, and draws agree", () => {
  const cases: [SamplerOptions, number[]][] = [
    [{ topP: 1 }, [0, 1, 2, 3, 4, 5, 6]],
    [{ topP: 1, topK: 2 }, [0, 1]],
    [{ topP: 1, topK: 1 }, [0]],
    // top-p 0.7: 0.4 + 0.25 = 0.65 < 0.7, + 0.15 = 0.8 ≥ 0.7 → three tokens
    [{ topP: 0.7 }, [0, 1, 2]],
    [{ topP: 0.4 }, [0]],
    // default top-p 0.85: 0.4 + 0.25 + 0.15 + 0.1 = 0.9
    [{}, [0, 1, 2, 3]],
    // min-p 0.3 × 0.4 = 0.12 → 0.4, 0.25, 0.15
    [{ topP: 1, minP: 0.3 }, [0, 1, 2]],
    // top-a 1 × 0.4² = 0.16 → 0.4, 0.25
    [{ topP: 1, topA: 1 }, [0, 1]],
    [{ topP: 1, topA: 0.5 }, [0, 1, 2, 3]], // 0.08
    [{ topP: 1, topA: 100 }, [0]], // the top token always survives
    // typical: entropy 1.561 nats; distances |−ln p − H| rank tokens 1, 2, 0, 3, …
    [{ topP: 1, typicalP: 0.3 }, [1, 2]], // 0.25 + 0.15 ≥ 0.3: the most likely token is cut
    [{ topP: 1, typicalP: 0.5 }, [0, 1, 2]],
    [{ topP: 1, typicalP: 0.9 }, [0, 1, 2, 3]],
  ];
  for (const [options, expected] of cases) {
    assertEquals(kept(options), expected, JSON.stringify(options));
    drawsMatch(options, expected);
  }
});

Deno.test("sampler: filters chain on the renormalized distribution, in the documented order", () => {
  // top-k 3 → (0.5, 0.3125, 0.1875); then top-p 0.8 → 0.5 + 0.3125 ≥ 0.8
  assertEquals(kept({ topK: 3, topP: 0.8 }), [0, 1]);
  // top-p 0.7 → (0.5, 0.3125, 0.1875); top-a 1 then cuts below 0.5² = 0.25
  assertEquals(kept({ topP: 0.7, topA: 1 }), [0, 1]);
  assertEquals(kept({ topP: 0.7, topA: 0.7 }), [0, 1, 2]); // 0.175
  // temperature comes before the filters: at T = 0.5 the nucleus narrows
  assertEquals(kept({ topP: 0.7, temperature: 0.5 }), [0, 1]);
  assertEquals(kept({ topP: 0.7, temperature: 2 }), [0, 1, 2, 3]);
  // the kept probabilities are renormalized
  const d = new Sampler({ topK: 3, topP: 1 }).distribution(L);
  assert(Math.abs(d[0] - 0.5) < 1e-6 && Math.abs(d[2] - 0.1875) < 1e-6, `${d}`);
});

Deno.test("sampler: top-p keeps tokens tied with its last one (as ChatRWKV)", () => {
  const tied = logitsOf([0.3, 0.3, 0.2, 0.2]);
  assertEquals(kept({ topP: 0.5 }, tied), [0, 1]);
  assertEquals(kept({ topP: 0.7 }, tied), [0, 1, 2, 3]);
  assertEquals(kept({ topP: 1, topK: 1 }, tied), [0]); // top-k breaks ties by lower id
});

Deno.test("sampler: temperature divides the logits (probs ** (1/T) without filters)", () => {
  const d = new Sampler({ topP: 1, temperature: 0.5, seed: 1 }).distribution(L);
  const sq = P.map((p) => p * p), z = sq.reduce((a, b) => a + b);
  for (let i = 0; i < P.length; i++) assert(Math.abs(d[i] - sq[i] / z) < 1e-6);
  // the draws follow the distribution: token 0 at about 61 %
  const h = histogram(new Sampler({ topP: 1, temperature: 0.5, seed: 2 }), L, 4000);
  assert(Math.abs(h.get(0)! / 4000 - sq[0] / z) < 0.03, `${h.get(0)}`);
});

Deno.test("sampler: same seed, same choices; another seed, other choices; reset replays", () => {
  const flat = logitsOf(Array(50).fill(0.02));
  const a = new Sampler({ topP: 1, seed: 42 }), b = new Sampler({ topP: 1, seed: 42 });
  const c = new Sampler({ topP: 1, seed: 43 });
  const ra = Array.from({ length: 40 }, () => a.sample(flat));
  assertEquals(Array.from({ length: 40 }, () => b.sample(flat)), ra);
  assert(Array.from({ length: 40 }, () => c.sample(flat)).join() !== ra.join());
  a.reset();
  assertEquals(Array.from({ length: 40 }, () => a.sample(flat)), ra);
  assertEquals(makeRng(5)(), makeRng(5)());
});

Deno.test("sampler: presence/frequency penalties with decaying counts, CTRL repetition", () => {
  const s = new Sampler({ presencePenalty: 0.5, frequencyPenalty: 1, penaltyDecay: 0.5 });
  s.accept(2);
  s.accept(2);
  const adj = s.adjust(new Float32Array(5));
  // count: 1, then decayed to 0.5 and + 1 = 1.5 → logit −(0.5 + 1.5 × 1)
  assert(Math.abs(adj[2] + 2) < 1e-6, `${adj[2]}`);
  assertEquals(adj[1], 0);
  s.accept(1); // token 2's count decays to 0.75
  assert(Math.abs(s.adjust(new Float32Array(5))[2] + 1.25) < 1e-6);
  const r = new Sampler({ repetitionPenalty: 2 });
  r.accept(0);
  r.accept(1);
  assertEquals([...r.adjust(Float32Array.from([4, -4, 4]))], [2, -8, 4]);
  r.reset();
  assertEquals([...r.adjust(Float32Array.from([4, -4, 4]))], [4, -4, 4]);
});

Deno.test("sampler: penalties make a sampler that accepts its own tokens repeat less", () => {
  const flat = logitsOf([0.25, 0.25, 0.25, 0.25]);
  const repeats = (options: SamplerOptions) => {
    const s = new Sampler({ topP: 1, seed: 4, ...options });
    let last = -1, n = 0;
    for (let i = 0; i < 2000; i++) {
      const t = s.sample(flat);
      s.accept(t);
      if (t === last) n++;
      last = t;
    }
    return n;
  };
  const plain = repeats({});
  assert(plain > 400 && plain < 600, `about a quarter repeat without penalties: ${plain}`);
  const penalized = repeats({ frequencyPenalty: 3, penaltyDecay: 0.5 });
  assert(penalized < plain / 3, `${penalized} repeats with a frequency penalty, ${plain} without`);
  // presence: a seen token is e² less likely than an unseen one
  const s = new Sampler({ topP: 1, presencePenalty: 2 });
  s.accept(0);
  const d = s.distribution(flat);
  assert(Math.abs(d[0] / d[1] - Math.exp(-2)) < 1e-5, `${d}`);
});

Deno.test("sampler: logit bias bans and forces tokens", () => {
  const banned = histogram(new Sampler({ logitBias: { 0: -Infinity }, topP: 1, seed: 3 }), L);
  assert(!banned.has(0) && banned.has(1));
  assertEquals([...histogram(new Sampler({ logitBias: { 6: 100 }, seed: 3 }), L, 200).keys()], [
    6,
  ]);
  const all = new Sampler({ logitBias: { 0: -Infinity, 1: -Infinity } });
  assertThrows(() => all.sample(Float32Array.from([0, 0])), UsageError, "banned");
});

Deno.test("sampler: mirostat v2 keeps draws valid and follows its target surprise", () => {
  const s = new Sampler({ mirostat: { tau: 1, eta: 0.5 }, seed: 5 });
  const seen = histogram(s, L, 1000);
  for (const t of seen.keys()) assert(t >= 0 && t < P.length);
  assert(seen.has(0));
  // a tiny target: mostly the top token; a huge one: no truncation at all
  const low = histogram(new Sampler({ mirostat: { tau: 0.01, eta: 0.1 }, seed: 5 }), L, 1000);
  assert(low.get(0)! > 900, `top token drawn ${low.get(0)} times`);
  const high = histogram(new Sampler({ mirostat: { tau: 30 }, seed: 5 }), L, 3000);
  assertEquals([...high.keys()].sort(), [0, 1, 2, 3, 4, 5, 6]);
  // the bound adapts: on a long tail, a lower target draws less surprising tokens
  const V = 1000, tail = new Float32Array(V).map((_, i) => -i / 40);
  const z = tail.reduce((a, x) => a + Math.exp(x), 0);
  const meanBits = (options: SamplerOptions) => {
    const m = new Sampler({ seed: 8, ...options });
    let bits = 0;
    for (let i = 0; i < 3000; i++) bits += -Math.log2(Math.exp(tail[m.sample(tail)]) / z);
    return bits / 3000;
  };
  const b2 = meanBits({ mirostat: { tau: 2 } }), b6 = meanBits({ mirostat: { tau: 6 } });
  const plain = meanBits({ topP: 1 }); // the entropy, ≈ 6.8 bits
  assert(b2 < b6 - 0.5 && b6 < plain - 0.2, `mean surprise ${b2}, ${b6}, ${plain}`);
});

/** A plain reference: full sort, each filter in order on the renormalized distribution. */
function reference(
  logits: Float32Array,
  o: Required<
    Omit<
      SamplerOptions,
      | "mirostat"
      | "logitBias"
      | "seed"
      | "repetitionPenalty"
      | "presencePenalty"
      | "frequencyPenalty"
      | "penaltyDecay"
    >
  >,
): Float64Array {
  const max = Math.max(...logits);
  const e = Array.from(logits, (x) => Math.exp((x - max) / o.temperature));
  const z = e.reduce((a, b) => a + b);
  const p = e.map((x) => x / z);
  let keep = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  const mass = () => keep.reduce((a, i) => a + p[i], 0);
  if (o.topK > 0) keep = keep.slice(0, o.topK);
  if (o.topP < 1) {
    const total = mass();
    let cum = 0, j = 0;
    for (; j < keep.length - 1; j++) if ((cum += p[keep[j]]) >= o.topP * total) break;
    const cutoff = p[keep[j]];
    keep = keep.filter((i) => p[i] >= cutoff);
  }
  if (o.minP > 0) keep = keep.filter((i) => p[i] >= o.minP * p[keep[0]]);
  if (o.topA > 0) {
    const m = mass(), top = p[keep[0]] / m;
    keep = keep.filter((i) => p[i] / m >= o.topA * top * top);
  }
  if (o.typicalP < 1) {
    const m = mass();
    const h = -keep.reduce((a, i) => a + (p[i] / m) * Math.log(p[i] / m), 0);
    const d = (i: number) => Math.abs(-Math.log(p[i] / m) - h);
    const order = keep.slice().sort((a, b) => d(a) - d(b) || a - b);
    let cum = 0, j = 0;
    for (; j < order.length - 1; j++) if ((cum += p[order[j]]) >= o.typicalP * m) break;
    keep = order.slice(0, j + 1);
  }
  const out = new Float64Array(logits.length), m = mass();
  for (const i of keep) out[i] = p[i] / m;
  return out;
}

Deno.test("sampler: fast paths equal a full-sort reference on a 20000-token vocabulary", () => {
  const rng = makeRng(123);
  const V = 20000;
  // Roughly Gaussian logits with a few strong tokens, like a language model's.
  const logits = new Float32Array(V).map(() => (rng() + rng() + rng() - 1.5) * 4);
  for (let i = 0; i < 20; i++) logits[Math.floor(rng() * V)] += 8 + rng() * 4;
  const base = { temperature: 1, topK: 0, topP: 1, minP: 0, topA: 0, typicalP: 1 };
  const combos = [
    { topP: 0.85 },
    { topP: 0.3, temperature: 0.7 },
    { topK: 40 },
    { topK: 500, topP: 0.9 },
    { minP: 0.05 },
    { topA: 0.2 },
    { topA: 0.02, minP: 0.01 },
    { topP: 0.95, minP: 0.02, topA: 0.1 },
    { typicalP: 0.9, topP: 0.99 },
    { typicalP: 0.5 },
    { temperature: 1.5, topK: 100, topP: 0.8, minP: 0.01, typicalP: 0.95 },
  ];
  for (const c of combos) {
    const o = { ...base, ...c };
    const want = reference(logits, o);
    const got = new Sampler(o).distribution(logits);
    let diff = 0, keptWant = 0, keptGot = 0;
    for (let i = 0; i < V; i++) {
      diff = Math.max(diff, Math.abs(want[i] - got[i]));
      if (want[i] > 0) keptWant++;
      if (got[i] > 0) keptGot++;
    }
    assertEquals(keptGot, keptWant, JSON.stringify(c));
    assert(diff < 1e-5, `${JSON.stringify(c)}: differs by ${diff}`);
  }
});

Deno.test("sampler: a 65536-token vocabulary samples exactly (speed: bench/sample_bench.ts)", () => {
  const V = 65536;
  const logits = new Float32Array(V).map((_, i) => -i / 1000);
  const d = new Sampler({ topP: 0.5 }).distribution(logits);
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
  assertThrows(() => new Sampler({ minP: 2 }), UsageError, "minP");
  assertThrows(() => new Sampler({ typicalP: 0 }), UsageError, "typicalP");
  assertThrows(() => new Sampler({ mirostat: { tau: 0 } }), UsageError, "mirostat");
  assertThrows(() => new Sampler({ penaltyDecay: 1.5 }), UsageError, "penaltyDecay");
  assertThrows(() => new Sampler().sample(new Float32Array(0)), UsageError, "empty");
});
