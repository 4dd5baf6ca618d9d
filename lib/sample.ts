/**
 * Sampling the next token from logits, ChatRWKV style.
 *
 * Order: logit bias → penalties (presence/frequency with decaying counts, repetition) → softmax →
 * filters on that distribution (top-k, top-p, min-p, top-a, typical; or mirostat v2) →
 * temperature as a power of the kept probabilities (as ChatRWKV does: `probs ** (1 / T)`) →
 * draw with a seeded RNG. Temperature 0 is greedy (argmax after bias and penalties).
 * @module
 */

import { UsageError } from "./errors.ts";

/**
 * Sampling settings. Defaults follow ChatRWKV's chat settings.
 * @example
 * ```ts ignore
 * const sampler = new Sampler({ temperature: 1, topP: 0.85, presencePenalty: 0.4, seed: 7 });
 * ```
 */
export interface SamplerOptions {
  /** 0 = greedy; default 1. */
  temperature?: number;
  /** Nucleus: keep the most likely tokens whose probabilities sum to at least this (1 = off; default 0.85). */
  topP?: number;
  /** Keep only the k most likely tokens (0 = off, default). */
  topK?: number;
  /** Drop tokens below `minP` × the top probability (0 = off, default). */
  minP?: number;
  /** Drop tokens below `topA` × (top probability)² (RWKV README's top-a; 0 = off, default). */
  topA?: number;
  /** Locally typical sampling mass (1 = off, default). */
  typicalP?: number;
  /** Presence penalty: subtracted from the logit of any token seen (default 0). */
  presencePenalty?: number;
  /** Frequency penalty: subtracted once per (decayed) occurrence (default 0). */
  frequencyPenalty?: number;
  /** Each token, occurrence counts are multiplied by this (ChatRWKV: 0.996, default). */
  penaltyDecay?: number;
  /** CTRL-style repetition penalty: seen tokens' positive logits ÷ it, negative × it (1 = off). */
  repetitionPenalty?: number;
  /** Mirostat v2 (replaces the other filters): target surprise `tau` (bits) and rate `eta`. */
  mirostat?: { tau: number; eta?: number };
  /** Added to the logits of these token ids (−Infinity bans a token). */
  logitBias?: Readonly<Record<number, number>>;
  /** Same seed, same choices. Default: random. */
  seed?: number;
}

/** A small, fast, seedable PRNG (mulberry32): uniform floats in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Picks next tokens. `accept(token)` tells it what was chosen (for penalties).
 * @example
 * ```ts ignore
 * const sampler = new Sampler({ temperature: 0.8, topP: 0.9, seed: 42 });
 * const token = sampler.sample(logits);
 * sampler.accept(token);
 * ```
 */
export class Sampler {
  readonly options: Readonly<Required<Omit<SamplerOptions, "mirostat" | "logitBias" | "seed">>> & {
    mirostat?: { tau: number; eta: number };
    logitBias?: Readonly<Record<number, number>>;
  };
  #rng: () => number;
  #seed: number;
  #counts = new Map<number, number>();
  #mu = 0;

  constructor(options: SamplerOptions = {}) {
    const o = {
      temperature: options.temperature ?? 1,
      topP: options.topP ?? 0.85,
      topK: options.topK ?? 0,
      minP: options.minP ?? 0,
      topA: options.topA ?? 0,
      typicalP: options.typicalP ?? 1,
      presencePenalty: options.presencePenalty ?? 0,
      frequencyPenalty: options.frequencyPenalty ?? 0,
      penaltyDecay: options.penaltyDecay ?? 0.996,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      mirostat: options.mirostat
        ? { tau: options.mirostat.tau, eta: options.mirostat.eta ?? 0.1 }
        : undefined,
      logitBias: options.logitBias,
    };
    const bad = (name: string, ok: boolean) => {
      if (!ok) throw new UsageError(`sampler option ${name} is out of range`);
    };
    bad("temperature", o.temperature >= 0 && Number.isFinite(o.temperature));
    bad("topP", o.topP > 0 && o.topP <= 1);
    bad("topK", Number.isInteger(o.topK) && o.topK >= 0);
    bad("minP", o.minP >= 0 && o.minP <= 1);
    bad("topA", o.topA >= 0);
    bad("typicalP", o.typicalP > 0 && o.typicalP <= 1);
    bad("penaltyDecay", o.penaltyDecay >= 0 && o.penaltyDecay <= 1);
    bad("repetitionPenalty", o.repetitionPenalty > 0);
    bad("mirostat", !o.mirostat || (o.mirostat.tau > 0 && o.mirostat.eta > 0));
    this.options = o;
    this.#seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.#rng = makeRng(this.#seed);
    this.#mu = o.mirostat ? 2 * o.mirostat.tau : 0;
  }

  /** Forgets penalties and restarts the RNG from the seed. */
  reset(): void {
    this.#counts.clear();
    this.#rng = makeRng(this.#seed);
    this.#mu = this.options.mirostat ? 2 * this.options.mirostat.tau : 0;
  }

  /** Records a token that entered the text (prompt or generated): decays, then counts it. */
  accept(token: number): void {
    const d = this.options.penaltyDecay;
    if (d !== 1) { for (const [k, v] of this.#counts) this.#counts.set(k, v * d); }
    this.#counts.set(token, (this.#counts.get(token) ?? 0) + 1);
  }

  /** Logits after bias and penalties (a new array). */
  adjust(logits: Float32Array): Float32Array {
    const o = this.options;
    const out = Float32Array.from(logits);
    if (o.logitBias) {
      for (const [k, b] of Object.entries(o.logitBias)) {
        const i = Number(k);
        if (i >= 0 && i < out.length) out[i] += b;
      }
    }
    if (o.presencePenalty || o.frequencyPenalty || o.repetitionPenalty !== 1) {
      for (const [t, c] of this.#counts) {
        if (t < 0 || t >= out.length) continue;
        out[t] -= o.presencePenalty + c * o.frequencyPenalty;
        if (o.repetitionPenalty !== 1) {
          out[t] = out[t] > 0 ? out[t] / o.repetitionPenalty : out[t] * o.repetitionPenalty;
        }
      }
    }
    return out;
  }

  /**
   * The distribution a draw is made from: probabilities after every filter and the
   * temperature (zeros for cut tokens), summing to 1. Not defined for temperature 0.
   */
  distribution(logits: Float32Array): Float32Array {
    const o = this.options;
    const x = this.adjust(logits);
    const p = softmax(x);
    if (o.mirostat) {
      // v2: drop tokens more surprising than mu bits (always keep the most likely one)
      const top = argmax(p);
      for (let i = 0; i < p.length; i++) if (i !== top && -Math.log2(p[i]) > this.#mu) p[i] = 0;
    } else {
      if (o.topK > 0 && o.topK < p.length) keepTopK(p, o.topK);
      if (o.topP < 1) keepTopP(p, o.topP);
      const max = p[argmax(p)];
      if (o.minP > 0) cutBelow(p, o.minP * max);
      if (o.topA > 0) cutBelow(p, o.topA * max * max);
      if (o.typicalP < 1) keepTypical(p, o.typicalP);
    }
    if (o.temperature !== 1) {
      const inv = 1 / o.temperature;
      for (let i = 0; i < p.length; i++) if (p[i] > 0) p[i] = Math.pow(p[i], inv);
    }
    normalize(p);
    return p;
  }

  /** Chooses the next token (does not record it: call {@link Sampler.accept}). */
  sample(logits: Float32Array): number {
    if (this.options.temperature === 0) return argmax(this.adjust(logits));
    const p = this.distribution(logits);
    let r = this.#rng(), chosen = -1, last = -1;
    for (let i = 0; i < p.length; i++) {
      if (p[i] <= 0) continue;
      last = i;
      r -= p[i];
      if (r < 0) {
        chosen = i;
        break;
      }
    }
    if (chosen < 0) chosen = last; // rounding left a sliver
    if (this.options.mirostat) {
      const q = softmax(this.adjust(logits));
      const surprise = -Math.log2(q[chosen]);
      this.#mu -= this.options.mirostat.eta * (surprise - this.options.mirostat.tau);
    }
    return chosen;
  }
}

/** Index of the largest value (first on ties). */
export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function softmax(x: Float32Array): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  const p = new Float32Array(x.length);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const e = x[i] === -Infinity ? 0 : Math.exp(x[i] - max);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

function normalize(p: Float32Array): void {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i];
  if (s > 0) { for (let i = 0; i < p.length; i++) p[i] /= s; }
}

function cutBelow(p: Float32Array, threshold: number): void {
  for (let i = 0; i < p.length; i++) if (p[i] < threshold) p[i] = 0;
}

/** Indices of non-zero probabilities, most likely first. */
function sortedCandidates(p: Float32Array, minimum = 0): number[] {
  const idx: number[] = [];
  for (let i = 0; i < p.length; i++) if (p[i] > 0 && p[i] >= minimum) idx.push(i);
  return idx.sort((a, b) => p[b] - p[a] || a - b);
}

function keepTopK(p: Float32Array, k: number): void {
  const idx = sortedCandidates(p);
  for (let j = k; j < idx.length; j++) p[idx[j]] = 0;
}

/**
 * Nucleus filter without sorting the whole vocabulary: a histogram over log2(p) finds the
 * bucket where the mass crosses `topP`; only tokens at or above it are sorted (exact).
 */
function keepTopP(p: Float32Array, topP: number): void {
  const B = 64;
  const mass = new Float64Array(B);
  const bucket = (x: number) => Math.min(B - 1, Math.floor(-Math.log2(x)));
  let total = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) (mass[bucket(p[i])] += p[i], total += p[i]);
  let acc = 0, edge = B - 1;
  for (let b = 0; b < B; b++) {
    acc += mass[b];
    if (acc >= topP * total) {
      edge = b;
      break;
    }
  }
  const minimum = edge >= B - 1 ? 0 : 2 ** -(edge + 1);
  const idx = sortedCandidates(p, minimum);
  let cum = 0, cutoff = 0;
  for (const i of idx) {
    cum += p[i];
    if (cum >= topP * total) {
      cutoff = p[i];
      break;
    }
  }
  cutBelow(p, cutoff); // as ChatRWKV: everything below the last kept probability goes
}

function keepTypical(p: Float32Array, mass: number): void {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
  const idx = sortedCandidates(p);
  const dev = (i: number) => Math.abs(-Math.log(p[i]) - h);
  idx.sort((a, b) => dev(a) - dev(b) || a - b);
  let total = 0;
  for (const i of idx) total += p[i];
  let cum = 0, j = 0;
  for (; j < idx.length; j++) {
    cum += p[idx[j]];
    if (cum >= mass * total) break;
  }
  for (let k = j + 1; k < idx.length; k++) p[idx[k]] = 0;
}
