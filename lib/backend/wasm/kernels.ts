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
   * n int16 in ±8191, then n/32 f32 scales, then the 7-bit planes of q + 8192 (high, then low
   * bits; n bytes each). {@link quantizedBytes} holds either.
   */
  quantize(x: number, xq: number, n: number, mode: 0 | 1): void;
  /**
   * The decode scratch of `matmul_bf16` (scale 1) and `matmul_f16` (scale 2^56): the first
   * `n & −8` of `n` f32 at `x` into `s`, each group of 8 as its 4 even then its 4 odd values,
   * times `scale`. Once per product, before any row range of it.
   */
  prepare_x(x: number, s: number, n: number, scale: number): void;
  /**
   * Which q8 product serves two or more tokens: 1 (the default) the fused 8-bit dot on the
   * activations' two 7-bit planes, 0 the int16 products (the one-token path). Both compute
   * the same integers, so the same bits; which is faster depends on the machine (see
   * {@link q8FusedFaster}).
   */
  q8_fused(on: 0 | 1): void;
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

let q8Choice: boolean | undefined;

/**
 * Whether the fused 8-bit dot (`q8_fused(1)`) multiplies q8 matrices by several tokens faster
 * than the int16 products on this machine: the relaxed dot is one instruction where x86 has
 * VNNI (2.0× the int16 path's speed measured here) but three to four without it. Measured once
 * per process on a 256 KiB matrix (about 20 ms); the results are the same bits either way.
 * @example
 * ```ts
 * const memory = new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true });
 * const kernels = instantiateKernels(await compileKernels(), memory);
 * kernels.q8_fused(await q8FusedFaster() ? 1 : 0);
 * ```
 */
export async function q8FusedFaster(): Promise<boolean> {
  if (q8Choice !== undefined) return q8Choice;
  const rows = 64, cols = 4096, T = 4, n = rows * cols;
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
  const k = instantiateKernels(await compileKernels(), memory);
  const w = 0,
    s = n,
    x = s + (n / 32) * 6,
    xq = x + T * cols * 4,
    y = xq + quantizedBytes(T * cols);
  const bytes = new Uint8Array(memory.buffer);
  for (let i = 0; i < n; i++) bytes[i] = (i * 37) & 0xff;
  new Float32Array(memory.buffer, s, n / 32).fill(1 / 64);
  const xs = new Float32Array(memory.buffer, x, T * cols);
  for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i);
  k.quantize(x, xq, T * cols, 1);
  const best = [Infinity, Infinity];
  for (let round = 0; round < 6; round++) {
    for (const on of [round & 1, 1 - (round & 1)] as (0 | 1)[]) {
      k.q8_fused(on);
      const t = performance.now();
      for (let i = 0; i < 8; i++) k.matmul_q8(w, s, xq, y, rows, cols, T, 0, rows);
      best[on] = Math.min(best[on], performance.now() - t);
    }
  }
  q8Choice = best[1] <= best[0];
  return q8Choice;
}
