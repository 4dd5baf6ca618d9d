/**
 * The WebAssembly SIMD kernels, instantiated over a model's shared memory.
 * @module
 */

/** The exported kernel functions (byte offsets into the shared memory). */
export interface Kernels {
  mm_f32(
    w: number,
    x: number,
    y: number,
    rows: number,
    cols: number,
    T: number,
    r0: number,
    r1: number,
  ): void;
  mm_bf16(
    w: number,
    x: number,
    y: number,
    rows: number,
    cols: number,
    T: number,
    r0: number,
    r1: number,
  ): void;
  quant_x(x: number, xq: number, xs: number, n: number): void;
  mm_q8(
    w: number,
    ws: number,
    xq: number,
    xs: number,
    y: number,
    rows: number,
    cols: number,
    T: number,
    r0: number,
    r1: number,
  ): void;
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
  ): void;
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
  ): void;
  mm_q4(
    w: number,
    ws: number,
    xq: number,
    xs: number,
    y: number,
    rows: number,
    cols: number,
    T: number,
    r0: number,
    r1: number,
  ): void;
}

const WASM_URL = new URL("./kernels.wasm", import.meta.url);

/** The kernels' bytes, read from beside this module (file: or http(s): alike). */
export async function kernelBytes(): Promise<Uint8Array> {
  if (WASM_URL.protocol === "file:") return await Deno.readFile(WASM_URL);
  const res = await fetch(WASM_URL);
  if (!res.ok) throw new Error(`cannot fetch ${WASM_URL}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Compiles the kernels once. */
export async function compileKernels(): Promise<WebAssembly.Module> {
  return await WebAssembly.compile(await kernelBytes() as Uint8Array<ArrayBuffer>);
}

/** Instantiates the kernels over `memory`. */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): Kernels {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as Kernels;
}
