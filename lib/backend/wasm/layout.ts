/**
 * How the WebAssembly kernels want q8/q4 matrices laid out in the arena, and the look-ups that
 * read that layout (the embedding row of a quantized matrix, the tests).
 * @module
 */

import { LoadSimd } from "../../formats/simd.ts";
import { decodeRow } from "../reference/math.ts";
import type { Matrix, MatrixDesc, MatrixLayout, StorageDType } from "../../model/tensor.ts";

/**
 * Rows a matrix occupies: q8/q4 rows are stored in groups of four (the last group padded with
 * zero rows), other dtypes as they are.
 */
export function paddedRows(rows: number, dtype: StorageDType): number {
  return dtype === "q8" || dtype === "q4" ? Math.ceil(rows / 4) * 4 : rows;
}

/**
 * Rows of a q4 matrix whose groups lie in bands of two (the padded rows rounded down to 8: see
 * {@link finishMatrix}); 0 for other dtypes.
 * @example
 * ```ts
 * bandRows(50277, "q4"); // 50272: 6284 bands of 8 rows, then one group of four on its own
 * ```
 */
export function bandRows(rows: number, dtype: StorageDType): number {
  return dtype === "q4" ? paddedRows(rows, dtype) & -8 : 0;
}

/**
 * The widest column panel of a q4 matrix (the kernels' `$q4_panel`): a matrix with longer rows
 * is stored as panels of at most this many columns (see {@link q4PanelCols}).
 */
export const Q4_PANEL_COLS = 2560;

/**
 * The width of a q4 matrix's column panels but the last (which holds the rest): its columns
 * split into as few panels of at most {@link Q4_PANEL_COLS} as will do, evenly in whole blocks
 * of 32. Equal to `cols` when one panel holds them.
 * @example
 * ```ts
 * q4PanelCols(2560); // 2560: one panel
 * q4PanelCols(10240); // 2560: four panels
 * q4PanelCols(16384); // 2368: six of 2368 and one of 2176
 * ```
 */
export function q4PanelCols(cols: number): number {
  const nb = cols / 32, np = Math.ceil(cols / Q4_PANEL_COLS);
  return Math.ceil(nb / np) * 32;
}

/** Rows in a block of a q4 matrix laid out in column panels (the last block holds the rest). */
export const Q4_PANEL_ROWS = 64;

/** Each column panel of a q4 matrix of `cols` columns: its first column and its width. */
function q4Panels(cols: number): [c0: number, pc: number][] {
  const pw = q4PanelCols(cols), out: [number, number][] = [];
  for (let c0 = 0; c0 < cols; c0 += pw) out.push([c0, Math.min(pw, cols - c0)]);
  return out;
}

/**
 * The kernels' layout: q8/q4 rows in interleaved groups of four (see {@link finishMatrix}),
 * and after the f32 block scales as many i16 corrections (q8, unread now); other dtypes
 * row-major.
 * @example
 * ```ts
 * import { Arena } from "../../model/tensor.ts";
 * const bytes = 64 * 2 ** 20; // room for the weights
 * const arena = new Arena(bytes, 64, KERNEL_LAYOUT);
 * ```
 */
export const KERNEL_LAYOUT: MatrixLayout = {
  bytes(rows, cols, dtype) {
    const storedRows = paddedRows(rows, dtype), n = storedRows * cols;
    switch (dtype) {
      case "f32":
        return { storedRows, data: n * 4, scales: 0 };
      case "bf16":
      case "f16":
        return { storedRows, data: n * 2, scales: 0 };
      // per block an f32 scale, then (after all scales) an i16 correction (see finishMatrix)
      case "q8":
        return { storedRows, data: n, scales: (n / 32) * 6 };
      case "q4":
        return { storedRows, data: n / 2, scales: (n / 32) * 8 };
    }
  },
  finish: (buffer, d, memory) => finishMatrix(buffer, d, memory),
  finishQ8_0: (_buffer, d, memory, scaleMul) => finishQ8_0Blocks(d, memory, scaleMul),
};

/**
 * Arranges a q8 matrix read into its memory as ggml Q8_0 blocks (see
 * {@link MatrixLayout.finishQ8_0}) in one pass of WebAssembly SIMD, in place: the same bytes as
 * taking the blocks apart and {@link finishMatrix}. False where SIMD is missing (nothing done).
 * @example
 * ```ts
 * import { Arena } from "../../model/tensor.ts";
 * const arena = new Arena(1 << 20, 64, KERNEL_LAYOUT);
 * const d = arena.allocMatrix(4, 64, "q8"); // 8 blocks of 34 bytes read at d.offset, then:
 * finishQ8_0Blocks(d, arena.memory, 1);
 * ```
 */
export function finishQ8_0Blocks(
  d: MatrixDesc,
  memory: WebAssembly.Memory | undefined,
  scaleMul: number,
): boolean {
  const simd = d.dtype === "q8" && memory ? LoadSimd.for(memory) : undefined;
  if (!simd) return false;
  const pr = paddedRows(d.rows, d.dtype), nb = d.cols / 32;
  simd.finishQ8_0(d.offset, d.scaleOffset, d.scaleOffset + pr * nb * 4, d.rows, d.cols, scaleMul);
  return true;
}

/**
 * Puts a q8/q4 matrix written row-major (padding rows zero) into the layout the integer kernels
 * read, once all its rows are stored; other dtypes are left as they are.
 *
 * Rows go in groups of four, interleaved by 32-bit words: word `c` of rows `4g..4g+3` are the
 * four words at `4c..4c+3` of the group. A q8 word is four consecutive values of a row; a q4
 * word holds values `4v..4v+3` in its low nibbles and `16+4v..` in its high ones (ggml's block
 * order kept). So one 16-byte load gives four rows × four values, and the kernels' int8 dot
 * product leaves one row's partial sum in each lane: no horizontal sums. Block scales are
 * interleaved the same way (four rows' scales of a block side by side), and for q8 each
 * (row, block) gets the i16 `−Σq` (|Σq| ≤ 32 · 127 fits). No kernel reads those corrections
 * now (the fused q8 dot takes its offset from the activations' block sums instead, see
 * kernels.wat `$q8_pair`); their room stays, as the in-place GGUF Q8_0 arrangement
 * (`finishQ8_0Blocks`) parks the blocks' halves in it. Dropping them is a layout change.
 *
 * q4 goes one step further: the two groups of each whole band of 8 rows ({@link bandRows})
 * have their blocks side by side (block b of the band's group j at 128·b + 64·j bytes from the
 * band's start; its scales at 32·b + 16·j), so the one-token kernel reads a band as one
 * stream, both groups a step, and each activation it splats serves the two; prompts read a
 * band as one stream too (two groups × four tokens a tile). A last group past the last whole
 * band keeps its blocks one after another.
 *
 * A q4 matrix of more than {@link Q4_PANEL_COLS} columns is cut into pieces: its padded rows in
 * blocks of {@link Q4_PANEL_ROWS} (the last the rest), each block's columns in panels
 * ({@link q4PanelCols}), each (block, panel) piece laid out as above as a matrix of its rows and
 * columns, the pieces one after another: a block's panels in turn, then the next block. The piece
 * of block `b0` (first row; `bn` rows) and panel `c0` (first column) starts `(b0·cols + bn·c0)/2`
 * bytes into the data and `(b0·cols + bn·c0)/8` into the scales. Decoding streams the pieces in
 * order (one sequential run) while a panel's activations stay in the first-level cache: whole
 * long rows read at 0.7× the rate (docs/SPEED.md).
 *
 * Given the WebAssembly memory that `buffer` belongs to, the rearrangement runs in WebAssembly
 * SIMD in place ({@link LoadSimd}: a group at a time, at memory speed); without it, or where
 * the runtime lacks SIMD, in TypeScript. Both give the same bytes.
 */
export function finishMatrix(
  buffer: ArrayBufferLike,
  d: MatrixDesc,
  memory?: WebAssembly.Memory,
): void {
  if (d.dtype !== "q8" && d.dtype !== "q4") return;
  const pr = paddedRows(d.rows, d.dtype), nb = d.cols / 32;
  const simd = memory && LoadSimd.for(memory);
  if (d.dtype === "q4") {
    // in WebAssembly, one panel is the case of pieces whose blocks of rows lie as bands would
    if (simd) return simd.finishQ4Panels(d.offset, d.scaleOffset, pr, d.cols, q4PanelCols(d.cols));
    if (q4PanelCols(d.cols) < d.cols) return toPanels(buffer, d, pr);
  }
  if (simd) {
    simd.finishQ8(d.offset, d.scaleOffset, d.scaleOffset + pr * nb * 4, pr, d.cols);
    return;
  }
  const rowWords = d.dtype === "q8" ? d.cols / 4 : d.cols / 8;
  interleaveGroups(new Uint32Array(buffer, d.offset, pr * rowWords), pr, rowWords);
  interleaveGroups(new Uint32Array(buffer, d.scaleOffset, pr * nb), pr, nb);
  if (d.dtype === "q4") {
    const band = bandRows(d.rows, d.dtype);
    interleaveBands(new Uint32Array(buffer, d.offset, band * rowWords), 4 * rowWords, 16);
    interleaveBands(new Uint32Array(buffer, d.scaleOffset, band * nb), 4 * nb, 4);
    return;
  }
  const q = new Int8Array(buffer, d.offset, pr * d.cols);
  const corr = new Int16Array(buffer, d.scaleOffset + pr * nb * 4, pr * nb);
  // interleaved, block b of group g is 128 bytes: its word c·4 + j belongs to row j
  for (let gb = 0; gb < (pr / 4) * nb; gb++) {
    for (let j = 0; j < 4; j++) {
      let s = 0;
      for (let c = 0; c < 8; c++) {
        const o = gb * 128 + c * 16 + j * 4;
        s += q[o] + q[o + 1] + q[o + 2] + q[o + 3];
      }
      corr[gb * 4 + j] = -s;
    }
  }
}

/**
 * A q4 matrix of long rows (row-major, `pr` padded rows) into its pieces (see
 * {@link finishMatrix}), in TypeScript: each block of rows copied out, each of its panels put
 * back row-major in the piece's place and laid out as a matrix of its own.
 */
function toPanels(buffer: ArrayBufferLike, d: MatrixDesc, pr: number): void {
  const rb = d.cols / 2, sb = d.cols / 8; // bytes a row of values, of scales
  for (let b0 = 0; b0 < pr; b0 += Q4_PANEL_ROWS) {
    const bn = Math.min(Q4_PANEL_ROWS, pr - b0);
    const vals = new Uint8Array(buffer, d.offset + b0 * rb, bn * rb);
    const scales = new Uint8Array(buffer, d.scaleOffset + b0 * sb, bn * sb);
    const v = vals.slice(), s = scales.slice();
    for (const [c0, pc] of q4Panels(d.cols)) {
      const at = bn * c0; // the piece's place, in values
      for (let r = 0; r < bn; r++) {
        vals.set(v.subarray(r * rb + c0 / 2, r * rb + (c0 + pc) / 2), at / 2 + (r * pc) / 2);
        scales.set(s.subarray(r * sb + c0 / 8, r * sb + (c0 + pc) / 8), at / 8 + (r * pc) / 8);
      }
      const piece = { ...d, rows: bn, cols: pc, offset: d.offset + (b0 * d.cols + at) / 2 };
      finishMatrix(buffer, { ...piece, scaleOffset: d.scaleOffset + (b0 * d.cols + at) / 8 });
    }
  }
}

/** Within each group of four rows of `words`-word rows: word c of row j goes to c·4 + j. */
function interleaveGroups(a: Uint32Array, rows: number, words: number): void {
  const tmp = new Uint32Array(4 * words);
  for (let g = 0; g < rows; g += 4) {
    const base = g * words;
    tmp.set(a.subarray(base, base + 4 * words));
    for (let j = 0; j < 4; j++) {
      const src = j * words;
      for (let c = 0; c < words; c++) a[base + c * 4 + j] = tmp[src + c];
    }
  }
}

/**
 * In each band of two groups of `group` words (`a` holds whole bands), unit b of group j
 * (`unit` words) goes to (2b + j)·unit.
 */
function interleaveBands(a: Uint32Array, group: number, unit: number): void {
  const tmp = new Uint32Array(2 * group), units = group / unit;
  for (let base = 0; base < a.length; base += 2 * group) {
    tmp.set(a.subarray(base, base + 2 * group));
    for (let j = 0; j < 2; j++) {
      for (let b = 0; b < units; b++) {
        const from = j * group + b * unit, to = base + (2 * b + j) * unit;
        for (let k = 0; k < unit; k++) a[to + k] = tmp[from + k];
      }
    }
  }
}

/** Where {@link interleaveBands} moves index `i` (groups of `group`, units of `unit`). */
function banded(i: number, group: number, unit: number): number {
  const o = i % (2 * group), j = Math.floor(o / group), q = o % group;
  return i - o + (Math.floor(q / unit) * 2 + j) * unit + (q % unit);
}

/**
 * Index of byte `p` of row `r` in the data of a finished q8/q4 matrix of `rows` × `cols`
 * (`cols` bytes a row in q8, `cols / 2` in q4).
 * @example
 * ```ts
 * declare const data: Uint8Array, rows: number, cols: number, r: number, p: number;
 * const byte = data[groupedByte(r, p, rows, cols, "q4")];
 * ```
 */
export function groupedByte(
  r: number,
  p: number,
  rows: number,
  cols: number,
  dtype: "q8" | "q4",
): number {
  if (dtype === "q8") return grouped(r, p, cols, 0);
  const [b0, bn, c0, pc] = pieceOf(r, p * 2, rows, cols);
  return (b0 * cols + bn * c0) / 2 + grouped(r - b0, p - c0 / 2, pc / 2, bn & -8);
}

/**
 * Index of the scale of block `b` of row `r` in the scales of a finished q8/q4 matrix of
 * `rows` × `cols`.
 * @example
 * ```ts
 * declare const scales: Float32Array, rows: number, cols: number, r: number, b: number;
 * const scale = scales[groupedScale(r, b, rows, cols, "q4")];
 * ```
 */
export function groupedScale(
  r: number,
  b: number,
  rows: number,
  cols: number,
  dtype: "q8" | "q4",
): number {
  if (dtype === "q8") return groupedUnit(r, b, cols / 32, 0);
  const [b0, bn, c0, pc] = pieceOf(r, b * 32, rows, cols);
  return (b0 * cols + bn * c0) / 32 + groupedUnit(r - b0, b - c0 / 32, pc / 32, bn & -8);
}

/**
 * The piece of a q4 matrix (see {@link finishMatrix}) holding row `r`, column `c`: its block's
 * first row and rows, its panel's first column and columns (a matrix of at most
 * {@link Q4_PANEL_COLS} columns is one piece).
 */
function pieceOf(r: number, c: number, rows: number, cols: number): number[] {
  const pr = paddedRows(rows, "q4"), pw = q4PanelCols(cols);
  if (pw >= cols) return [0, pr, 0, cols];
  const b0 = r - (r % Q4_PANEL_ROWS), c0 = c - (c % pw);
  return [b0, Math.min(Q4_PANEL_ROWS, pr - b0), c0, Math.min(pw, cols - c0)];
}

/** Byte `p` of row `r` of a matrix (or panel) of `rowBytes` a row, its first `band` rows banded. */
function grouped(r: number, p: number, rowBytes: number, band: number): number {
  const i = (r >> 2) * 4 * rowBytes + (p >> 2) * 16 + (r & 3) * 4 + (p & 3);
  return r < band ? banded(i, 4 * rowBytes, 64) : i;
}

/** Scale of block `b` of row `r` of a matrix (or panel) of `nb` blocks a row. */
function groupedUnit(r: number, b: number, nb: number, band: number): number {
  const i = (r >> 2) * 4 * nb + b * 4 + (r & 3);
  return r < band ? banded(i, 4 * nb, 4) : i;
}

/** Decodes row `r` of a matrix in {@link KERNEL_LAYOUT} into `out` as f32. */
export function decodeRowGrouped(m: Matrix, r: number, out: Float32Array): void {
  const c = m.cols;
  switch (m.dtype) {
    case "f32":
    case "bf16":
    case "f16":
      return decodeRow(m, r, out); // rows are row-major in every layout
    case "q8": {
      const d = m.data as Int8Array, s = m.scales;
      for (let i = 0; i < c; i++) {
        out[i] = d[groupedByte(r, i, m.rows, c, "q8")] *
          s[groupedScale(r, i >> 5, m.rows, c, "q8")];
      }
      return;
    }
    case "q4": {
      const d = m.data as Uint8Array, s = m.scales, nb = c >> 5;
      for (let b = 0; b < nb; b++) {
        // the block's 16 bytes within its piece (found once a block: this runs per token for
        // a quantized embedding)
        const [b0, bn, c0, pc] = pieceOf(r, b * 32, m.rows, c), rr = r - b0, band = bn & -8;
        const at = (b0 * c + bn * c0) / 2,
          sc = s[
            (b0 * c + bn * c0) / 32 +
            groupedUnit(rr, b - c0 / 32, pc / 32, band)
          ];
        for (let j = 0; j < 16; j++) {
          const byte = d[at + grouped(rr, b * 16 + j - c0 / 2, pc / 2, band)];
          out[b * 32 + j] = ((byte & 15) - 8) * sc;
          out[b * 32 + j + 16] = ((byte >> 4) - 8) * sc;
        }
      }
      return;
    }
  }
}
