/**
 * Choosing the next token from logits.
 *
 * Order of operations (each step sees what the previous one left):
 * 1. logit bias (`logitBias`, −Infinity bans a token);
 * 2. penalties, ChatRWKV style: `logit[t] -= presence + count[t] × frequency`, where `count`
 *    decays by `penaltyDecay` every accepted token; then the CTRL repetition penalty (a seen
 *    token's positive logit ÷ it, negative × it);
 * 3. temperature: logits ÷ T, then softmax (T = 0: greedy, the argmax after steps 1–2);
 * 4. filters, in this order, each on the distribution the previous left (renormalized):
 *    top-k, top-p (nucleus), min-p, top-a, typical; or, instead of all of them, mirostat v2;
 * 5. a draw from what is left, with a seeded RNG (same seed → same choices).
 *
 * Note: ChatRWKV applies the temperature after top-p (as `probs ** (1 / T)`); applying it first
 * (as Hugging Face and llama.cpp do) lets a low temperature narrow the nucleus too. Without
 * filters both give the same distribution.
 *
 * Defaults follow ChatRWKV's: temperature 1.0, top-p 0.85, penalty decay 0.996; the
 * penalties themselves are off (the `rwkv` package's `PIPELINE_ARGS` default to presence 0.2,
 * frequency 0.2).
 * @module
 */

import { UsageError } from "./errors.ts";

/**
 * Sampling settings; every field is optional.
 * @example
 * ```ts
 * import type { SamplerOptions } from "./sample.ts";
 * const options: SamplerOptions = { temperature: 1, topP: 0.85, presencePenalty: 0.2, seed: 7 };
 * ```
 */
export interface SamplerOptions {
  /** Divides the logits; 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens. 0 = off (default). */
  topK?: number;
  /** Nucleus: keep the most likely tokens until their mass reaches this. 1 = off; default 0.85. */
  topP?: number;
  /** Drop tokens below `minP` × the top probability. 0 = off (default). */
  minP?: number;
  /** Drop tokens below `topA` × (top probability)², as in the RWKV README. 0 = off (default). */
  topA?: number;
  /** Locally typical sampling (Meister et al. 2022): the mass to keep. 1 = off (default). */
  typicalP?: number;
  /** CTRL repetition penalty for every seen token: positive logits ÷, negative ×. 1 = off. */
  repetitionPenalty?: number;
  /** Subtracted from the logit of every seen token. Default 0. */
  presencePenalty?: number;
  /** Subtracted once per (decayed) occurrence of a token. Default 0. */
  frequencyPenalty?: number;
  /** Occurrence counts are multiplied by this at every accepted token (ChatRWKV: 0.996). */
  penaltyDecay?: number;
  /**
   * Mirostat v2 instead of the filters: target surprise `tau` in bits (e.g. 5) and learning
   * rate `eta` (default 0.1).
   */
  mirostat?: { tau: number; eta?: number };
  /** Added to the logits of these token ids; −Infinity bans a token, a large value forces it. */
  logitBias?: Readonly<Record<number, number>>;
  /** Same seed, same choices. Default: a random seed. */
  seed?: number;
}

/**
 * {@link SamplerOptions} with every default filled in.
 * @example
 * ```ts
 * import { Sampler } from "./sample.ts";
 * console.log(new Sampler({ temperature: 0.8 }).options.topP); // 0.85, the default top-p
 * ```
 */
export interface ResolvedSamplerOptions {
  /** See {@link SamplerOptions.temperature}. */
  readonly temperature: number;
  /** See {@link SamplerOptions.topK}. */
  readonly topK: number;
  /** See {@link SamplerOptions.topP}. */
  readonly topP: number;
  /** See {@link SamplerOptions.minP}. */
  readonly minP: number;
  /** See {@link SamplerOptions.topA}. */
  readonly topA: number;
  /** See {@link SamplerOptions.typicalP}. */
  readonly typicalP: number;
  /** See {@link SamplerOptions.repetitionPenalty}. */
  readonly repetitionPenalty: number;
  /** See {@link SamplerOptions.presencePenalty}. */
  readonly presencePenalty: number;
  /** See {@link SamplerOptions.frequencyPenalty}. */
  readonly frequencyPenalty: number;
  /** See {@link SamplerOptions.penaltyDecay}. */
  readonly penaltyDecay: number;
  /** See {@link SamplerOptions.mirostat}. */
  readonly mirostat?: { readonly tau: number; readonly eta: number };
  /** See {@link SamplerOptions.logitBias}. */
  readonly logitBias?: Readonly<Record<number, number>>;
  /** See {@link SamplerOptions.seed}. */
  readonly seed: number;
}

/**
 * A small, fast, seedable PRNG (mulberry32): uniform floats in [0, 1).
 * @example
 * ```ts
 * import { makeRng } from "./sample.ts";
 * const rng = makeRng(42);
 * console.log(rng() === makeRng(42)()); // true
 * ```
 */
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
 * Index of the largest value (the first on ties; NaN is never chosen).
 * @example
 * ```ts
 * import { argmax } from "./sample.ts";
 * console.log(argmax([1, 3, 3, 2])); // 1
 * ```
 */
export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best] || !(a[best] === a[best])) best = i;
  return best;
}

/** The tokens a draw may pick, with their (unnormalized) probabilities. */
interface Kept {
  /** Undefined when no filter is on: every token, `probs` indexed by id. */
  ids: number[] | undefined;
  probs: ArrayLike<number>;
  mass: number;
}

/**
 * Picks next tokens. Call {@link Sampler.accept} with every token that enters the text
 * (prompt and generated) so the penalties know what was seen.
 * @example
 * ```ts
 * import { Sampler } from "./sample.ts";
 * const sampler = new Sampler({ temperature: 0.8, topP: 0.9, seed: 42 });
 * const logits = new Float32Array([0.1, 2.5, 1.0, -3]);
 * const token = sampler.sample(logits);
 * sampler.accept(token);
 * console.log(token); // 1 or 2: token 0 and 3 fall outside the 0.9 nucleus at T = 0.8
 * ```
 */
export class Sampler {
  /** The options in use, defaults filled in. */
  readonly options: ResolvedSamplerOptions;
  #rng: () => number;
  /** Decayed occurrence count of every token seen (for the penalties). */
  #counts = new Map<number, number>();
  /** Mirostat's running surprise bound, in bits. */
  #mu = 0;
  // Scratch buffers reused across calls (a 65536 vocabulary would otherwise allocate 512 KiB
  // per token).
  #logits = new Float32Array(0);
  #probs = new Float32Array(0);

  /** A sampler with `options` (unset ones take the defaults documented on them). */
  constructor(options: SamplerOptions = {}) {
    const o: ResolvedSamplerOptions = {
      temperature: options.temperature ?? 1,
      topK: options.topK ?? 0,
      topP: options.topP ?? 0.85,
      minP: options.minP ?? 0,
      topA: options.topA ?? 0,
      typicalP: options.typicalP ?? 1,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      presencePenalty: options.presencePenalty ?? 0,
      frequencyPenalty: options.frequencyPenalty ?? 0,
      penaltyDecay: options.penaltyDecay ?? 0.996,
      mirostat: options.mirostat
        ? { tau: options.mirostat.tau, eta: options.mirostat.eta ?? 0.1 }
        : undefined,
      logitBias: options.logitBias,
      seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
    };
    const check = (name: string, ok: boolean) => {
      if (!ok) throw new UsageError(`sampler option ${name} is out of range`);
    };
    const finite = Number.isFinite;
    check("temperature", finite(o.temperature) && o.temperature >= 0);
    check("topK", Number.isInteger(o.topK) && o.topK >= 0);
    check("topP", o.topP > 0 && o.topP <= 1);
    check("minP", o.minP >= 0 && o.minP <= 1);
    check("topA", finite(o.topA) && o.topA >= 0);
    check("typicalP", o.typicalP > 0 && o.typicalP <= 1);
    check("repetitionPenalty", finite(o.repetitionPenalty) && o.repetitionPenalty > 0);
    check("presencePenalty", finite(o.presencePenalty));
    check("frequencyPenalty", finite(o.frequencyPenalty));
    check("penaltyDecay", o.penaltyDecay >= 0 && o.penaltyDecay <= 1);
    check("mirostat", !o.mirostat || (o.mirostat.tau > 0 && o.mirostat.eta > 0));
    check("seed", finite(o.seed));
    for (const [k, v] of Object.entries(o.logitBias ?? {})) {
      check(`logitBias[${k}]`, Number.isInteger(Number(k)) && !Number.isNaN(v));
    }
    this.options = o;
    this.#rng = makeRng(o.seed);
    this.#mu = o.mirostat ? 2 * o.mirostat.tau : 0;
  }

  /** Forgets the penalties, restarts the RNG from the seed and resets mirostat. */
  reset(): void {
    this.#counts.clear();
    this.#rng = makeRng(this.options.seed);
    this.#mu = this.options.mirostat ? 2 * this.options.mirostat.tau : 0;
  }

  /** Records a token that entered the text: every count decays, then this one grows by 1. */
  accept(token: number): void {
    const decay = this.options.penaltyDecay;
    if (decay !== 1) { for (const [t, c] of this.#counts) this.#counts.set(t, c * decay); }
    this.#counts.set(token, (this.#counts.get(token) ?? 0) + 1);
  }

  /** The logits after bias and penalties (steps 1–2), as a new array. */
  adjust(logits: Float32Array): Float32Array {
    return this.#adjustInto(logits, new Float32Array(logits.length));
  }

  #adjustInto(logits: Float32Array, out: Float32Array): Float32Array {
    const o = this.options;
    out.set(logits);
    if (o.logitBias) {
      for (const [k, bias] of Object.entries(o.logitBias)) {
        const t = Number(k);
        if (t >= 0 && t < out.length) out[t] += bias;
      }
    }
    const additive = o.presencePenalty !== 0 || o.frequencyPenalty !== 0;
    const rep = o.repetitionPenalty;
    if (additive || rep !== 1) {
      for (const [t, count] of this.#counts) {
        if (t < 0 || t >= out.length) continue;
        let x = out[t] - (o.presencePenalty + count * o.frequencyPenalty);
        if (rep !== 1) x = x > 0 ? x / rep : x * rep;
        out[t] = x;
      }
    }
    return out;
  }

  /**
   * The distribution a draw is made from (steps 1–4): probabilities summing to 1, zero for
   * every cut token. At temperature 0, all the mass is on the greedy choice.
   */
  distribution(logits: Float32Array): Float32Array {
    const out = new Float32Array(logits.length);
    if (this.options.temperature === 0) {
      out[argmax(this.adjust(logits))] = 1;
      return out;
    }
    const { ids, probs, mass } = this.#kept(logits);
    for (let j = 0; j < probs.length; j++) out[ids ? ids[j] : j] = probs[j] / mass;
    return out;
  }

  /**
   * Chooses the next token. It is not recorded: call {@link Sampler.accept} with the token
   * that is actually used.
   */
  sample(logits: Float32Array): number {
    if (logits.length === 0) throw new UsageError("cannot sample from empty logits");
    if (this.options.temperature === 0) {
      if (this.#logits.length !== logits.length) this.#logits = new Float32Array(logits.length);
      return argmax(this.#adjustInto(logits, this.#logits));
    }
    const { ids, probs, mass } = this.#kept(logits);
    let r = this.#rng() * mass, j = 0;
    for (; j < probs.length - 1; j++) {
      r -= probs[j];
      if (r < 0) break;
    }
    // rounding can leave r ≥ 0 at the end: j is then the last token, which cannot be zero
    // when ids lists the kept ones; over the whole vocabulary, step back to a possible token
    if (!ids) { while (j > 0 && probs[j] === 0) j--; }
    const mirostat = this.options.mirostat;
    if (mirostat) {
      // v2: move the bound by the error between the observed and the target surprise
      const surprise = -Math.log2(probs[j] / mass);
      this.#mu -= mirostat.eta * (surprise - mirostat.tau);
    }
    return ids ? ids[j] : j;
  }

  /** Steps 1–4: the surviving tokens and their probabilities (not yet normalized). */
  #kept(logits: Float32Array): Kept {
    const o = this.options;
    const n = logits.length;
    if (this.#logits.length !== n) {
      this.#logits = new Float32Array(n);
      this.#probs = new Float32Array(n);
    }
    const x = this.#adjustInto(logits, this.#logits);
    const p = this.#probs;
    // softmax(x / T)
    const invT = 1 / o.temperature;
    let max = -Infinity, top = -1;
    for (let i = 0; i < n; i++) {
      if (x[i] > max) (max = x[i], top = i);
    }
    if (top < 0 || max === Infinity) {
      throw new UsageError(
        top < 0 ? "every token is banned (all logits −Infinity or NaN)" : "a logit is +Infinity",
      );
    }
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = x[i] > -Infinity ? Math.exp((x[i] - max) * invT) : 0; // NaN → 0 as well
      p[i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < n; i++) p[i] *= inv;

    if (o.mirostat) return this.#mirostat(p, top);

    // Candidates most likely first. Each filter but typical keeps a prefix of this order, so
    // only tokens that can survive need sorting: top-k selects with a heap; otherwise a lower
    // bound on what survives skips the long tail before the sort.
    const prefixFilters = o.topK > 0 || o.topP < 1 || o.minP > 0 || o.topA > 0;
    if (!prefixFilters && o.typicalP === 1) return { ids: undefined, probs: p, mass: 1 };
    let ids: number[];
    let mass = 1; // of the tokens the filters so far keep
    let massBeforeTopA: number | undefined;
    if (o.topK > 0 && o.topK < n) {
      ids = topKIndices(p, o.topK);
      mass = sumOf(p, ids, ids.length);
    } else {
      const minPFloor = o.minP * p[top];
      let floor = minPFloor;
      if (o.topP < 1) {
        floor = Math.max(floor, nucleusFloor(p, o.topP));
      } else if (o.topA > 0) {
        // Without top-p, top-a's bound (its threshold is at least top_a × max²) cuts the tail
        // too; its renormalization needs the mass min-p leaves, tail included.
        floor = Math.max(floor, o.topA * p[top] * p[top]);
        massBeforeTopA = 0;
        for (let i = 0; i < n; i++) if (p[i] >= minPFloor) massBeforeTopA += p[i];
      }
      floor = Math.min(floor, p[top]); // the most likely token always survives
      ids = [];
      for (let i = 0; i < n; i++) if (p[i] > 0 && p[i] >= floor) ids.push(i);
      if (prefixFilters) ids.sort((a, b) => p[b] - p[a] || a - b);
    }
    let m = ids.length;

    if (o.topP < 1) {
      // smallest prefix reaching the mass, plus any token tied with its last one (as ChatRWKV)
      let cum = 0, j = 0;
      for (; j < m - 1; j++) {
        cum += p[ids[j]];
        if (cum >= o.topP * mass) break;
      }
      const cutoff = p[ids[j]];
      for (m = j + 1; m < ids.length && p[ids[m]] === cutoff;) m++;
      mass = sumOf(p, ids, m);
    }
    if (o.minP > 0) {
      const floor = o.minP * p[ids[0]];
      while (m > 1 && p[ids[m - 1]] < floor) m--;
      mass = sumOf(p, ids, m);
    }
    if (o.topA > 0) {
      // top_a × max², with both taken in the renormalized distribution
      const floor = o.topA * p[ids[0]] * p[ids[0]] / (massBeforeTopA ?? mass);
      while (m > 1 && p[ids[m - 1]] < floor) m--;
      mass = sumOf(p, ids, m);
    }
    ids.length = m;
    if (o.typicalP < 1) {
      ids = typical(p, ids, mass, o.typicalP);
      mass = sumOf(p, ids, ids.length);
    }
    return { ids, probs: ids.map((i) => p[i]), mass };
  }

  /** Mirostat v2: keep tokens whose surprise −log2 p is at most mu (at least the top one). */
  #mirostat(p: Float32Array, top: number): Kept {
    const floor = 2 ** -this.#mu;
    const ids: number[] = [];
    for (let i = 0; i < p.length; i++) if (p[i] >= floor && p[i] > 0) ids.push(i);
    if (ids.length === 0) ids.push(top);
    return { ids, probs: ids.map((i) => p[i]), mass: sumOf(p, ids, ids.length) };
  }
}

function sumOf(p: Float32Array, ids: readonly number[], m: number): number {
  let s = 0;
  for (let j = 0; j < m; j++) s += p[ids[j]];
  return s;
}

/**
 * The k most likely indices, most likely first (ties: lower index first), by a size-k min-heap:
 * O(n log k) instead of sorting the vocabulary.
 */
function topKIndices(p: Float32Array, k: number): number[] {
  const heap: number[] = []; // heap[0] is the least likely of the k best so far
  // "a ranks below b": lower probability, or equal and a later index
  const below = (a: number, b: number) => p[a] < p[b] || (p[a] === p[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let s = i;
      if (l < heap.length && below(heap[l], heap[s])) s = l;
      if (r < heap.length && below(heap[r], heap[s])) s = r;
      if (s === i) return;
      [heap[i], heap[s]] = [heap[s], heap[i]];
      i = s;
    }
  };
  for (let i = 0; i < p.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0;) {
        const parent = (c - 1) >> 1;
        if (!below(heap[c], heap[parent])) break;
        [heap[c], heap[parent]] = [heap[parent], heap[c]];
        c = parent;
      }
    } else if (below(heap[0], i)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => p[b] - p[a] || a - b);
}

/**
 * A lower bound on the smallest probability the nucleus keeps, found without sorting: bucket
 * the tokens by the binary exponent of p (bucket b holds p in [2^−b, 2^−b+1)); once the buckets
 * from the top reach the mass, no token in a lower bucket can be needed.
 */
function nucleusFloor(p: Float32Array, topP: number): number {
  const BUCKETS = 64;
  const mass = new Float64Array(BUCKETS);
  const bits = new Int32Array(p.buffer, p.byteOffset, p.length);
  let total = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    const b = Math.min(BUCKETS - 1, 127 - ((bits[i] >>> 23) & 0xff)); // = ceil(−log2 p)
    mass[b] += p[i];
    total += p[i];
  }
  let acc = 0;
  for (let b = 0; b < BUCKETS - 1; b++) {
    acc += mass[b];
    if (acc >= topP * total) return 2 ** -b;
  }
  return 0;
}

/**
 * Locally typical sampling (Meister et al. 2022, as Hugging Face's `TypicalLogitsWarper`):
 * rank tokens by how far their surprise is from the entropy, keep the closest until their
 * mass reaches `typicalP`.
 */
function typical(p: Float32Array, ids: number[], mass: number, typicalP: number): number[] {
  let entropy = 0;
  for (const i of ids) {
    const q = p[i] / mass;
    if (q > 0) entropy -= q * Math.log(q);
  }
  const distance = new Map<number, number>();
  for (const i of ids) distance.set(i, Math.abs(-Math.log(p[i] / mass) - entropy));
  const order = ids.slice().sort((a, b) => distance.get(a)! - distance.get(b)! || a - b);
  let cum = 0, j = 0;
  for (; j < order.length - 1; j++) {
    cum += p[order[j]];
    if (cum >= typicalP * mass) break;
  }
  return order.slice(0, j + 1);
}
