/**
 * Code-point ranges as UTF-8 byte-range sequences, so that the matcher works on bytes only:
 * a character class becomes an alternation of sequences of byte ranges (one to four each).
 * @module
 */

/** An inclusive range of bytes or code points. */
export type Range = readonly [lo: number, hi: number];

const MAX_CP = 0x10ffff;

/** Sorts and merges ranges; drops the surrogates (U+D800–U+DFFF), which UTF-8 cannot encode. */
export function normalizeRanges(ranges: readonly Range[]): Range[] {
  const sorted = ranges.filter(([lo, hi]) => lo <= hi).map(([lo, hi]) =>
    [lo, hi] as [number, number]
  )
    .sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  const noSurrogates: Range[] = [];
  for (const [lo, hi] of out) {
    if (hi < 0xd800 || lo > 0xdfff) noSurrogates.push([lo, hi]);
    else {
      if (lo < 0xd800) noSurrogates.push([lo, 0xd7ff]);
      if (hi > 0xdfff) noSurrogates.push([0xe000, hi]);
    }
  }
  return noSurrogates;
}

/** The code points not in `ranges` (which must be normalized), surrogates excluded. */
export function complementRanges(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of ranges) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return normalizeRanges(out);
}

function encode(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [
    0xf0 | (cp >> 18),
    0x80 | ((cp >> 12) & 63),
    0x80 | ((cp >> 6) & 63),
    0x80 | (cp & 63),
  ];
}

/**
 * The UTF-8 byte sequences of the code points in [lo, hi] (no surrogates inside), as lists of
 * byte ranges: every code point's encoding matches exactly one sequence, and nothing else does.
 * @example
 * ```ts
 * utf8Sequences(0x00, 0x7ff); // [[[0x00, 0x7f]], [[0xc2, 0xdf], [0x80, 0xbf]]]
 * ```
 */
export function utf8Sequences(lo: number, hi: number): Range[][] {
  const out: Range[][] = [];
  const split = (lo: number, hi: number): void => {
    // First by encoded length, then until all but the last byte ranges share their prefixes.
    for (const b of [0x7f, 0x7ff, 0xffff]) {
      if (lo <= b && b < hi) {
        split(lo, b);
        split(b + 1, hi);
        return;
      }
    }
    const n = encode(lo).length;
    for (let i = 1; i < n; i++) {
      const m = (1 << (6 * i)) - 1;
      if ((lo & ~m) !== (hi & ~m)) {
        if ((lo & m) !== 0) {
          split(lo, lo | m);
          split((lo | m) + 1, hi);
          return;
        }
        if ((hi & m) !== m) {
          split(lo, (hi & ~m) - 1);
          split(hi & ~m, hi);
          return;
        }
      }
    }
    const a = encode(lo), b = encode(hi);
    out.push(a.map((x, i) => [x, b[i]] as Range));
  };
  split(lo, hi);
  return out;
}
