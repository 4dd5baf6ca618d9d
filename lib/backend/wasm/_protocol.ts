/**
 * The shared-memory protocol between the pool (main thread) and its Workers: the slots of the
 * control block through which a forward pass is started, counted, finished and claimed.
 * @module
 */

/**
 * Claim counters: the products of one `matmuls` call (no barrier between them) each count on
 * their own, so one member's last failed claim on a product can never take a chunk of the next
 * (a decoding group, claimed as one run, counts on the first).
 */
export const CLAIM_SLOTS = 16;

/** Slots of the control block (Int32 indices into shared memory). */
export const CTRL = {
  /** Job counter: the main thread bumps it to start a forward pass. */
  job: 0,
  /** Number of the last finished job (member 0 writes it). */
  done: 1,
  /** Tokens in this job. */
  tokens: 2,
  /** Segments (sequences) in this job. */
  segments: 10,
  /** 1: logits after every token. */
  every: 3,
  /** Barrier: members arrived in this generation. */
  barCount: 4,
  /** Barrier: generation counter. */
  barGen: 5,
  logitsOffset: 6,
  logitsLength: 7,
  /** Non-zero when a member failed. */
  error: 8,
  /** Non-zero: members leave their loop. */
  quit: 9,
  /**
   * The first of {@link CLAIM_SLOTS} counters of row chunks claimed in this pass (products split
   * dynamically; see `WorkerOps`), each on a cache line of its own: members claim while others
   * spin on the barrier's words.
   */
  claim: 16,
  size: 16 + 16 * 16,
} as const;
