/**
 * What every version module provides: a forward pass over up to `maxT` tokens bound to loaded
 * weights and a machine.
 * @module
 */

/** A version's forward pass, bound to weights and a {@link Compute}. */
export interface Runner {
  /** Largest number of tokens one `forward` call takes (callers chunk longer inputs). */
  readonly maxT: number;
  /**
   * Runs `tokens` (at most `maxT`) through the model, updating `state` in place (the tensors
   * of the official state, in official order). Returns the logits after the last token
   * (`vocab` values) or, with `everyPosition`, after each token (`T × vocab`). The returned
   * array is reused by the next call: copy what you keep.
   */
  forward(tokens: ArrayLike<number>, state: Float32Array[], everyPosition: boolean): Float32Array;
}
