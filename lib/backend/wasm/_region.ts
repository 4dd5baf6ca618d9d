/**
 * The allocator of the shared memory's regions: each Worker's private buffers and the team's
 * shared ones are bumped off a region in the order the forward pass asks for them.
 * @module
 */

/** A bump allocator over a region of the shared memory. */
export class Region {
  #top: number;
  readonly start: number;
  readonly end: number;
  constructor(readonly memory: WebAssembly.Memory, start: number, size: number) {
    this.start = this.#top = start;
    this.end = start + size;
  }
  /** Reserves `bytes` (64-byte aligned) and returns their offset. */
  bytes(n: number): number {
    const off = Math.ceil(this.#top / 64) * 64;
    if (off + n > this.end) throw new RangeError("engine region exhausted");
    this.#top = off + n;
    return off;
  }
  /** A zeroed f32 vector (`zero` false: as the memory has it, pages left untouched). */
  f32(n: number, zero = true): Float32Array {
    const v = new Float32Array(this.memory.buffer, this.bytes(n * 4), n);
    if (zero) v.fill(0);
    return v;
  }
}
