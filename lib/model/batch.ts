/**
 * Splitting a batched call into passes: every backend runs at most `maxT` tokens per pass, so
 * long inputs are cut into chunks and short ones from several sequences share a pass. The one
 * chunking helper of the toolkit.
 * @module
 */

/**
 * One sequence's part of a pass.
 * @example
 * ```ts
 * const p: Piece = { item: 1, from: 0, start: 1, length: 63, last: false };
 * ```
 */
export interface Piece {
  /** Index of the sequence in the call. */
  readonly item: number;
  /** Its first token in this pass, as an index into the sequence's tokens. */
  readonly from: number;
  /** Row of that token in the pass. */
  readonly start: number;
  /** Tokens in this pass. */
  readonly length: number;
  /** Whether the sequence ends in this pass. */
  readonly last: boolean;
}

/**
 * Plans the passes for sequences of `lengths` tokens, at most `maxT` tokens a pass: each pass
 * gives every unfinished sequence, in order, as many of its next tokens as still fit, so short
 * sequences run together and a long one is chunked (its chunks in order, one per pass).
 * @example
 * ```ts
 * import { planPasses } from "./batch.ts";
 * const passes = planPasses([1, 100], 64); // pass 0: 1 + 63 tokens, pass 1: the last 37
 * if (passes.length !== 2 || passes[1][0].length !== 37) throw new Error("unexpected plan");
 * ```
 */
export function planPasses(lengths: readonly number[], maxT: number): Piece[][] {
  const done = lengths.map(() => 0), passes: Piece[][] = [];
  for (;;) {
    const pass: Piece[] = [];
    let rows = 0;
    for (let i = 0; i < lengths.length && rows < maxT; i++) {
      const left = lengths[i] - done[i];
      if (left <= 0) continue;
      const n = Math.min(left, maxT - rows);
      pass.push({ item: i, from: done[i], start: rows, length: n, last: n === left });
      done[i] += n;
      rows += n;
    }
    if (!pass.length) return passes;
    passes.push(pass);
  }
}

/**
 * Runs sequences through `pass` (one backend pass: the tokens of its pieces one after another;
 * returns its logits, one row of `vocab` per piece or, with `every`, per token) and gathers per
 * sequence the logits after its last token, or after each of its tokens with `every`.
 * @example
 * ```ts
 * const items = [{ tokens: Int32Array.of(1, 2, 3) }, { tokens: Int32Array.of(4) }];
 * const vocab = 8;
 * // a stand-in pass (zero logits, one row per piece) where a backend runs the model
 * const out = await runPasses(items, false, 64, vocab, (_, pieces) =>
 *   new Float32Array(pieces.length * vocab));
 * console.log(out.length); // 2: the logits after each sequence's last token
 * ```
 */
export async function runPasses(
  items: readonly { readonly tokens: Int32Array }[],
  every: boolean,
  maxT: number,
  vocab: number,
  pass: (tokens: Int32Array, pieces: readonly Piece[]) => Float32Array | Promise<Float32Array>,
): Promise<Float32Array[]> {
  const out = items.map((it) => new Float32Array(every ? it.tokens.length * vocab : vocab));
  const tokens = new Int32Array(maxT);
  for (const pieces of planPasses(items.map((it) => it.tokens.length), maxT)) {
    let T = 0;
    for (const p of pieces) {
      tokens.set(items[p.item].tokens.subarray(p.from, p.from + p.length), T);
      T += p.length;
    }
    const logits = await pass(tokens.subarray(0, T), pieces);
    pieces.forEach((p, i) => {
      if (every) {
        const rows = logits.subarray(p.start * vocab, (p.start + p.length) * vocab);
        out[p.item].set(rows, p.from * vocab);
      } else if (p.last) out[p.item].set(logits.subarray(i * vocab, (i + 1) * vocab));
    });
  }
  return out;
}
