/**
 * The WebGPU device: adapter and device request, shader loading (relative to this module, so it
 * works when the toolkit is imported from a URL) and the compiled pipelines, cached.
 * @module
 */

import { UsageError } from "../../errors.ts";

/**
 * Which adapters {@link openGpu} accepts: `any` (a software adapter such as Mesa's llvmpipe
 * too) or `hardware` (refuses a fallback adapter, as `device: "auto"` needs).
 * @example
 * ```ts
 * const gpu = await openGpu({ adapter: "hardware" });
 * ```
 */
export type AdapterChoice = "any" | "hardware";

/**
 * An open WebGPU device with the pipelines of the backend's kernels.
 * @example
 * ```ts
 * const gpu = await openGpu();
 * console.log(gpu.adapterName, gpu.isFallback);
 * gpu.destroy();
 * ```
 */
export interface Gpu {
  /** The device every buffer and pipeline belongs to. */
  readonly device: GPUDevice;
  /** The adapter's description (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"). */
  readonly adapterName: string;
  /** True for a software (fallback) adapter. */
  readonly isFallback: boolean;
  /**
   * Invocations that share one matrix row (or one norm group): 1 on a software adapter (no
   * barriers: its SIMD lanes run eight rows side by side), 32 on a GPU (see matmul.wgsl).
   */
  readonly threadsPerRow: number;
  /**
   * Largest storage buffer binding in bytes, and no more than the largest buffer (a bigger
   * tensor is split across buffers, one binding each): the device's own limits, the adapter's.
   */
  readonly maxBinding: number;
  /** The compiled pipeline of `entry` in module `module` (`ops`, `f32`, `bf16`, …). */
  pipeline(module: ShaderModuleName, entry: string): GPUComputePipeline;
  /** The bind group layout shared by `ops` pipelines (0 params, 1 buf). */
  readonly opsLayout: GPUBindGroupLayout;
  /** The bind group layout of a matrix module (plus 2 data, and 3 scales for q8/q4). */
  matrixLayout(quantized: boolean): GPUBindGroupLayout;
  /** Frees the device. */
  destroy(): void;
}

/**
 * The shader modules: `ops` (element-wise, norms, recurrences) and one per storage type.
 * @example
 * ```ts
 * declare const gpu: Gpu;
 * const matmulQ8 = gpu.pipeline("q8" satisfies ShaderModuleName, "matmul");
 * ```
 */
export type ShaderModuleName = "ops" | "f32" | "f16" | "bf16" | "q8" | "q4";

const OPS_ENTRIES = [
  "norm",
  "act",
  "shift",
  "tmix",
  "add",
  "sigmoidMulAdd",
  "siluMul",
  "keepLast",
  "lastRows",
  "columns",
  "wkv4",
  "wkv5",
  "v7gates",
  "wkv7",
  "v7out",
];

let hardware: Promise<boolean> | undefined;

/**
 * Whether this runtime has a hardware WebGPU adapter (a software one such as llvmpipe does not
 * count). Asked once per process.
 * @example
 * ```ts
 * const device = (await hasHardwareGpu()) ? "webgpu" : "cpu";
 * ```
 */
export function hasHardwareGpu(): Promise<boolean> {
  hardware ??= (async () => {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" })
      .catch(() => null);
    return Boolean(adapter) && !fallback(adapter!);
  })();
  return hardware;
}

function fallback(adapter: GPUAdapter): boolean {
  return Boolean(
    (adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  );
}

/** Reads a WGSL file next to this module (a `file:` or `https:` URL alike). */
async function shaderText(name: string): Promise<string> {
  const url = new URL(`./${name}.wgsl`, import.meta.url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot load shader ${url}: HTTP ${res.status}`);
  return await res.text();
}

/**
 * Opens the WebGPU device and compiles the backend's kernels. Throws a {@link UsageError} when
 * the runtime has no WebGPU or no adapter (or only a software one and `adapter` is `hardware`).
 * @example
 * ```ts
 * const gpu = await openGpu();
 * const pipe = gpu.pipeline("q8", "matmul");
 * ```
 */
export async function openGpu(
  options: { adapter?: AdapterChoice; threadsPerRow?: number } = {},
): Promise<Gpu> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new UsageError("WebGPU is not available in this runtime (navigator.gpu)");
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new UsageError(
      "no WebGPU adapter: no GPU driver found (on Linux without a GPU, Mesa's software adapter " +
        "comes with the packages libegl1, libegl-mesa0 and libgl1-mesa-dri)",
    );
  }
  const info = adapter.info;
  const isFallback = Boolean(
    (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  );
  if (isFallback && options.adapter === "hardware") {
    throw new UsageError(`the only WebGPU adapter is a software one (${info.description})`);
  }
  const tpr = options.threadsPerRow ?? (isFallback ? 1 : 32);
  if (![1, 2, 4, 8, 16, 32, 64].includes(tpr)) {
    throw new UsageError(`threadsPerRow must be a power of two from 1 to 64, not ${tpr}`);
  }
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  });
  const texts = Object.fromEntries(
    await Promise.all(
      ["common", "ops", "matmul", "dtype_f32", "dtype_f16", "dtype_bf16", "dtype_q8", "dtype_q4"]
        .map(async (n) => [n, await shaderText(n)] as const),
    ),
  );
  const uniform: GPUBindGroupLayoutEntry = {
    binding: 0,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type: "uniform", hasDynamicOffset: true },
  };
  const storage = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry => ({
    binding,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type },
  });
  const opsLayout = device.createBindGroupLayout({
    entries: [uniform, storage(1, "storage")],
  });
  const floatLayout = device.createBindGroupLayout({
    entries: [uniform, storage(1, "storage"), storage(2, "read-only-storage")],
  });
  const quantLayout = device.createBindGroupLayout({
    entries: [
      uniform,
      storage(1, "storage"),
      storage(2, "read-only-storage"),
      storage(3, "read-only-storage"),
    ],
  });
  const modules = new Map<ShaderModuleName, GPUShaderModule>();
  const source = (m: ShaderModuleName): string =>
    m === "ops" ? texts.common + texts.ops : texts.common + texts[`dtype_${m}`] + texts.matmul;
  const pipelines = new Map<string, GPUComputePipeline>();
  device.pushErrorScope("validation");
  const build = (m: ShaderModuleName, entry: string): GPUComputePipeline => {
    let module = modules.get(m);
    if (!module) {
      module = device.createShaderModule({ code: source(m), label: m });
      modules.set(m, module);
    }
    const layout = m === "ops" ? opsLayout : m === "q8" || m === "q4" ? quantLayout : floatLayout;
    return device.createComputePipeline({
      label: `${m}.${entry}`,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: {
        module,
        entryPoint: entry,
        constants: entry === "matmul" || entry === "norm" ? { TPR: tpr } : {},
      },
    });
  };
  for (const e of OPS_ENTRIES) pipelines.set(`ops.${e}`, build("ops", e));
  for (const m of ["f32", "f16", "bf16", "q8", "q4"] as const) {
    for (const e of ["matmul", "embed"]) pipelines.set(`${m}.${e}`, build(m, e));
  }
  const err = await device.popErrorScope();
  if (err) throw new Error(`WebGPU kernels failed to compile: ${err.message}`);
  return {
    device,
    adapterName: info.description || info.device || info.vendor || "unknown adapter",
    isFallback,
    threadsPerRow: tpr,
    // rounded down to the 16 bytes a buffer is padded to
    maxBinding: Math.floor(
      Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / 16,
    ) * 16,
    pipeline(module, entry) {
      const p = pipelines.get(`${module}.${entry}`);
      if (!p) throw new Error(`no WebGPU kernel ${module}.${entry}`);
      return p;
    },
    opsLayout,
    matrixLayout: (quantized) => quantized ? quantLayout : floatLayout,
    destroy: () => device.destroy(),
  };
}
