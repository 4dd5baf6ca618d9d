/**
 * The WebAssembly SIMD kernels (`kernels.wat`, built into `kernels.wasm` by `build.ts`),
 * loaded from beside this module and instantiated over a model's shared memory.
 * @module
 */

/**
 * `matmul_<dtype>(w, s, x, y, rows, cols, T, r0, r1)`: `y[t·rows + r] = W[r,:] · x[t,:]` for
 * rows `r0 ≤ r < r1` and tokens `t < T` (byte offsets; `s` = block scales of q8/q4). For q8/q4
 * `x` is the output of {@link Kernels.quantize} for the T × cols activations. For bf16/f16 a
 * non-zero `s` with T = 1 is a scratch that {@link Kernels.prepare_x} filled from `x` (the
 * decode path reads it); `s` 0 decodes from `x` alone.
 */
export type MatmulKernel = (
  w: number,
  s: number,
  x: number,
  y: number,
  rows: number,
  cols: number,
  T: number,
  r0: number,
  r1: number,
) => void;

/** The exported kernel functions (all pointers are byte offsets into the shared memory). */
export interface Kernels {
  matmul_f32: MatmulKernel;
  matmul_bf16: MatmulKernel;
  matmul_f16: MatmulKernel;
  matmul_q8: MatmulKernel;
  matmul_q4: MatmulKernel;
  /**
   * Quantizes `n` f32 activations (n a multiple of 32) per block of 32 into `xq`. `mode` 0 (for
   * q4): n int8 in ±127, then n/32 f32 scales, then n/32 i32 block sums × −8; `mode` 1 (for q8):
   * n int16 q in ±8191, then n/32 f32 scales, then the signed planes of q = 128·h + l (h =
   * (q + 64) >> 7, then l; n int8 each, |h|, |l| ≤ 64), then n/32 i32 block sums × −128.
   * {@link quantizedBytes} holds either.
   */
  quantize(x: number, xq: number, n: number, mode: 0 | 1): void;
  /**
   * The decode scratch of `matmul_bf16` (scale 1) and `matmul_f16` (scale 2^56): the first
   * `n & −8` of `n` f32 at `x` into `s`, each group of 8 as its 4 even then its 4 odd values,
   * times `scale`. Once per product, before any row range of it.
   */
  prepare_x(x: number, s: number, n: number, scale: number): void;
  /**
   * Which q8 products take the fused 8-bit dot on the activations' two signed planes (by the
   * weights with their sign bits flipped where the dot reads its second operand as unsigned,
   * see `q8_dot`) instead of int16 products: bit 0 for two or more tokens, bit 1 for one token
   * (decoding); 1 by default. Every path computes the same integers, so the same bits; which
   * is faster depends on the machine (see {@link q8Paths}).
   */
  q8_fused(flags: number): void;
  /**
   * How the machine's relaxed 8-bit dot reads bytes of its second operand whose top bit is set:
   * 1 as unsigned (x86, the default), 2 as signed (see {@link relaxedDotMode}). The fused q8
   * paths give the int16 paths' results only with the right one.
   */
  q8_dot(mode: 1 | 2): void;
  /** `c` + the relaxed dot of the 16 bytes at `a` and at `b`, as i32x4 at `out`. */
  dot_probe(a: number, b: number, c: number, out: number): void;
  /**
   * RWKV-7 recurrence of H heads over T tokens whose vectors are C values apart (as `wkv7TS`
   * for a run of heads; N a multiple of 4).
   */
  wkv7(
    S: number,
    r: number,
    w: number,
    k: number,
    v: number,
    kk: number,
    b: number,
    y: number,
    H: number,
    N: number,
    T: number,
    C: number,
  ): void;
  /**
   * `n` values element by element (`out` may be `a` or `b`): op 0 `out = tanh a`, 1 `out = σ(a)`,
   * 2 `out = relu(a)²`, 3 `out += σ(a)·b`, 4 `out *= a·σ(a)`, 5 `out += a`.
   */
  ew(a: number, b: number, out: number, n: number, op: number): void;
  /**
   * RWKV-6's per-token mixes of T tokens of C values (as `tmixTS`; C a multiple of 4): op 0
   * `out = x + dx·(base + off)`, op 1 `out = exp(−exp(base + off))`.
   */
  tmix(
    x: number,
    dx: number,
    base: number,
    off: number,
    out: number,
    C: number,
    T: number,
    op: number,
  ): void;
  /** The token shift of T tokens of C values (as `shiftTS`; C a multiple of 4). */
  shift(
    cur: number,
    prev: number,
    mix: number,
    out: number,
    C: number,
    T: number,
    form: number,
  ): void;
  /**
   * `groups` runs of `n` values (n a multiple of 4) each normalised alone, times w plus b at
   * (g mod wrap)·n: LayerNorm over tokens (wrap 1) or GroupNorm over heads (wrap H).
   */
  norm(
    x: number,
    w: number,
    b: number,
    out: number,
    n: number,
    groups: number,
    wrap: number,
    eps: number,
  ): void;
  /**
   * Streams `n` bytes from `p` (n a multiple of 128) with 16-byte loads and nothing else: the
   * read ceiling the benchmarks compare the kernels with.
   */
  read_stream(p: number, n: number): number;
  /**
   * RWKV-4 recurrence over T tokens (as `wkv4TS`) of A channels (a multiple of 4), token t's
   * vectors at t·C values.
   */
  wkv4(
    r: number,
    k: number,
    v: number,
    u: number,
    decay: number,
    aa: number,
    bb: number,
    pp: number,
    out: number,
    A: number,
    T: number,
    C: number,
  ): void;
  /**
   * RWKV-7 gates of H heads (as `v7GatesTS`; v0 = 0 in layer 0; N a multiple of 4), token t's
   * vectors at t·C values.
   */
  v7_gates(
    a0: number,
    al: number,
    w0: number,
    wl: number,
    v0: number,
    vl: number,
    v: number,
    vFirst: number,
    kkW: number,
    ka: number,
    k: number,
    wDecay: number,
    vMix: number,
    kkN: number,
    kkA: number,
    kMod: number,
    H: number,
    N: number,
    T: number,
    C: number,
  ): void;
  /** RWKV-7 group norm, bonus and gate (as `v7OutTS`; N a multiple of 4). */
  v7_out(
    y: number,
    out: number,
    lnw: number,
    lnb: number,
    r: number,
    kMod: number,
    rk: number,
    vMix: number,
    g: number,
    H: number,
    N: number,
    T: number,
    C: number,
    eps: number,
  ): void;
  /**
   * RWKV-5/6 recurrence of H heads over T tokens (vectors C values apart, decays `wStep` apart:
   * 0 when one decay serves every token; N a multiple of 4).
   */
  wkv5(
    S: number,
    r: number,
    k: number,
    v: number,
    w: number,
    u: number,
    y: number,
    H: number,
    N: number,
    T: number,
    C: number,
    wStep: number,
  ): void;
}

/** Bytes `quantize` may write for `n` activations (the larger of its two modes). */
export function quantizedBytes(n: number): number {
  return 4 * n + (n / 32) * 8;
}

/**
 * Which build of the kernels: `single` reads everything from one memory; `split` reads the
 * weights of its products (and `read_stream`'s bytes) from a second memory, `env.weights`, so a
 * model's matrices may lie in several 4 GiB memories beside the one of its activations.
 */
export type KernelBuild = "single" | "split";

const WASM_URLS: Record<KernelBuild, URL> = {
  single: new URL("./kernels.wasm", import.meta.url),
  split: new URL("./kernels_split.wasm", import.meta.url),
};

/** The kernels' bytes, read from beside this module (file: or http(s): alike). */
export async function kernelBytes(build: KernelBuild = "single"): Promise<Uint8Array<ArrayBuffer>> {
  const url = WASM_URLS[build];
  if (url.protocol === "file:") return await Deno.readFile(url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

const compiled: Partial<Record<KernelBuild, Promise<WebAssembly.Module>>> = {};

/** Compiles a build of the kernels (once per process; a Module can be posted to Workers). */
export function compileKernels(build: KernelBuild = "single"): Promise<WebAssembly.Module> {
  compiled[build] ??= kernelBytes(build).then((b) => WebAssembly.compile(b));
  return compiled[build];
}

/**
 * Instantiates the kernels over `memory` (synchronous: the module is compiled already); the
 * `split` build also takes the memory its products read weights from.
 */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  weights?: WebAssembly.Memory,
): Kernels {
  const env: WebAssembly.ModuleImports = { memory };
  if (weights) env.weights = weights;
  const instance = new WebAssembly.Instance(module, { env });
  return instance.exports as unknown as Kernels;
}

/**
 * How this machine's `i32x4.relaxed_dot_i8x16_i7x16_add_s` reads its second operand's bytes
 * whose top bit is set, which WebAssembly leaves to the implementation: 1 as unsigned (x86: VNNI's
 * `vpdpbusd` and SSSE3's `pmaddubsw` alike), 2 as signed (Arm's `sdot`), 0 neither (then the fused
 * q8 paths stay off). Probed on first operands in ±64, as the q8 kernels use it, with every byte
 * value as the second; 64 bytes of scratch at `at`.
 * @example
 * ```ts
 * const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * const kernels = instantiateKernels(await compileKernels(), memory);
 * const mode = relaxedDotMode(kernels, memory, 0);
 * if (mode) kernels.q8_dot(mode);
 * ```
 */
export function relaxedDotMode(k: Kernels, memory: WebAssembly.Memory, at: number): 0 | 1 | 2 {
  const a = new Int8Array(memory.buffer, at, 16), b = new Uint8Array(memory.buffer, at + 16, 16);
  const c = new Int32Array(memory.buffer, at + 32, 4),
    out = new Int32Array(memory.buffer, at + 48, 4);
  let unsigned = true, signed = true;
  for (let trial = 0; trial < 16; trial++) {
    for (let i = 0; i < 16; i++) {
      a[i] = [64, -64, 63, -63][(i + trial) & 3] - ((i * 7 + trial * 3) % 5) * (i & 1);
      b[i] = (trial * 16 + i) & 0xff; // every byte value once over the trials
    }
    c.set([trial * 1000, -7, 1 << 20, -(1 << 20)]);
    k.dot_probe(at, at + 16, at + 32, at + 48);
    for (let lane = 0; lane < 4; lane++) {
      let u = c[lane], s = c[lane];
      for (let j = 4 * lane; j < 4 * lane + 4; j++) {
        u += a[j] * b[j];
        s += a[j] * (b[j] << 24 >> 24);
      }
      unsigned &&= out[lane] === u;
      signed &&= out[lane] === s;
    }
  }
  return unsigned ? 1 : signed ? 2 : 0;
}

/** Which q8 products this machine runs fused (`Kernels.q8_fused` flags) and how its dot reads. */
export interface Q8Paths {
  /** Bit 0: two or more tokens take the fused dot; bit 1: one token does. */
  flags: number;
  /** What {@link relaxedDotMode} found (0: no fused path). */
  dot: 0 | 1 | 2;
}

let q8Choice: Q8Paths | undefined;

/**
 * Which q8 products are faster with the fused 8-bit dot than with int16 products on this
 * machine: the relaxed dot is one instruction where x86 has VNNI (prompts 2.0× the int16 path's
 * speed measured here, decoding 1.4× from cache) but three to four without it. Measured once per
 * process on a 256 KiB matrix, for four tokens and for one (about 30 ms); the results are the
 * same bits either way.
 * @example
 * ```ts
 * const memory = new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true });
 * const kernels = instantiateKernels(await compileKernels(), memory);
 * const { flags, dot } = await q8Paths();
 * if (dot) kernels.q8_dot(dot);
 * kernels.q8_fused(flags);
 * ```
 */
export async function q8Paths(): Promise<Q8Paths> {
  if (q8Choice !== undefined) return q8Choice;
  const rows = 64, cols = 4096, T = 4, n = rows * cols;
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
  const k = instantiateKernels(await compileKernels(), memory);
  const w = 0,
    s = n,
    x = s + (n / 32) * 6,
    xq = x + T * cols * 4,
    y = xq + quantizedBytes(T * cols),
    probe = y + T * rows * 4;
  const dot = relaxedDotMode(k, memory, probe);
  if (dot === 0) return q8Choice = { flags: 0, dot };
  k.q8_dot(dot);
  const bytes = new Uint8Array(memory.buffer);
  for (let i = 0; i < n; i++) bytes[i] = (i * 37) & 0xff;
  new Float32Array(memory.buffer, s, n / 32).fill(1 / 64);
  const xs = new Float32Array(memory.buffer, x, T * cols);
  let flags = 0;
  for (const [tokens, bit] of [[T, 1], [1, 2]]) {
    for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i);
    k.quantize(x, xq, tokens * cols, 1);
    const best = [Infinity, Infinity];
    for (let round = 0; round < 6; round++) {
      for (const on of [round & 1, 1 - (round & 1)]) {
        k.q8_fused(on ? bit : 0);
        const t = performance.now();
        for (let i = 0; i < 32 / tokens; i++) k.matmul_q8(w, s, xq, y, rows, cols, tokens, 0, rows);
        best[on] = Math.min(best[on], performance.now() - t);
      }
    }
    if (best[1] <= best[0]) flags |= bit;
  }
  return q8Choice = { flags, dot };
}
