/**
 * Transparent huge pages for the memories that hold a model's weights, on Linux.
 *
 * A token streams every weight from memory once. With the kernel's 4 KiB pages that is a new
 * page (a TLB miss, a page walk) every 4 KiB; with 2 MiB pages, 512 times fewer. Measured on this
 * project's machine kind (AMD EPYC, 2 Workers): decode of RWKV-7 2.9B 1.03–1.05× faster at q8
 * and q4 with two engines in one process (bf16 1.003×), q4 1.19–1.25× by the medians of separate
 * runs (docs/SPEED.md), and the plain read loop 1.09–1.11× over huge pages.
 *
 * Most Linux systems give huge pages to memory that asks for them (`madvise` mode of
 * /sys/kernel/mm/transparent_hugepage/enabled), and a WebAssembly memory does not ask: this
 * module asks, with `madvise(MADV_HUGEPAGE)` through Deno's FFI. So it needs `--allow-ffi` (or
 * `-A`); without it, on other systems, or where the kernel says `never`, nothing changes and the
 * pages stay 4 KiB. The contents of the memory never change: only how the kernel maps them.
 *
 * It is off unless asked for (the `hugePages` load option, `--huge-pages on`; the `chat` and
 * `serve` CLIs ask by default), because the kernel may have to compact memory to find 2 MiB
 * pages: with the page cache full of model files, a 2.9B q8 load took 2.8–10 s instead of
 * 2.5–3.5 s. A server loads once and decodes for hours; a one-shot generation may not win its
 * load back.
 * `RWKV_HUGE_PAGES=1` (or `=0`) overrides the option for a process.
 * @module
 */

/** `madvise`'s advice asking for transparent huge pages (Linux's MADV_HUGEPAGE). */
const MADV_HUGEPAGE = 14;
/** A huge page: 2 MiB on x86-64 and on arm64 with 4 KiB base pages. */
export const HUGE_PAGE_BYTES = 2 * 2 ** 20;

const THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled";
const ENV = "RWKV_HUGE_PAGES";

type Libc = { madvise: { parameters: ["pointer", "usize", "i32"]; result: "i32" } };
let libc: Deno.DynamicLibrary<Libc> | null | undefined;
let modeCache: "always" | "madvise" | "never" | undefined;

/** A permission's state, without asking (false where it cannot be read). */
function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/** The kernel's THP mode: `always`, `madvise`, or `never` (also when it cannot be read). */
function thpMode(): "always" | "madvise" | "never" {
  if (modeCache) return modeCache;
  let mode: "always" | "madvise" | "never" = "never";
  if (Deno.build.os === "linux" && granted({ name: "read", path: THP_MODE })) {
    try {
      const m = /\[(\w+)\]/.exec(Deno.readTextFileSync(THP_MODE))?.[1];
      if (m === "always" || m === "madvise") mode = m;
    } catch { /* no THP in this kernel */ }
  }
  return modeCache = mode;
}

/** libc's `madvise`, or null where it cannot be opened. */
function openLibc(): Deno.DynamicLibrary<Libc> | null {
  if (libc !== undefined) return libc;
  libc = null;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      libc = Deno.dlopen(name, {
        madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
      });
      break;
    } catch { /* try the next name (musl has libc.so) */ }
  }
  return libc;
}

/**
 * Whether huge pages are wanted: `RWKV_HUGE_PAGES` when set and readable (`0` no, else yes),
 * else `asked` (the load option; default no).
 */
function wanted(asked: boolean | undefined): boolean {
  if (granted({ name: "env", variable: ENV })) {
    const v = Deno.env.get(ENV);
    if (v !== undefined && v !== "") return v !== "0";
  }
  return asked ?? false;
}

/**
 * Asks the kernel to back `bytes` of `memory` from its start with transparent huge pages, before
 * they are first written (pages already in place stay as they are until the kernel's background
 * collapse). Returns whether the memory will get them: true under the kernel's `always` mode
 * without asking, true when `madvise` succeeded, false when it is off, refused or unavailable
 * (see the module's notes). Never throws. `asked` is the load's `hugePages` option.
 * @example
 * ```ts
 * import { adviseHugePages } from "./huge_pages.ts";
 * const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
 * console.log(typeof adviseHugePages(memory, 2 ** 32, true)); // "boolean"
 * ```
 */
export function adviseHugePages(
  memory: WebAssembly.Memory,
  bytes: number,
  asked?: boolean,
): boolean {
  if (!wanted(asked)) return false;
  const mode = thpMode();
  if (mode !== "madvise") return mode === "always";
  if (!granted({ name: "ffi" })) return false;
  const c = openLibc();
  if (!c) return false;
  try {
    const base = Deno.UnsafePointer.value(
      Deno.UnsafePointer.of(new Uint8Array(memory.buffer)),
    ) as bigint;
    const huge = BigInt(HUGE_PAGE_BYTES);
    const start = (base + huge - 1n) / huge * huge, end = (base + BigInt(bytes)) / huge * huge;
    if (end <= start) return false;
    return c.symbols.madvise(Deno.UnsafePointer.create(start), end - start, MADV_HUGEPAGE) === 0;
  } catch {
    return false;
  }
}

/**
 * Faults in the pages of bytes `from` to `to` of `memory`, one write of 0 every 2 MiB (one
 * fault a huge page): done on fresh memory, whose pages are zero, so nothing changes but the
 * mapping. Done before a load writes them, the load's reads of the file land in pages already
 * there (measured, 3 GiB: 0.3–0.4 s of reads after 0.2–3 s of faults, against 1.7–3.9 s when
 * each read takes its own faults). Only for ranges no one has written yet.
 * @example
 * ```ts
 * import { faultHugePages } from "./huge_pages.ts";
 * const memory = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
 * faultHugePages(memory, 0, 64 * 65536);
 * ```
 */
export function faultHugePages(memory: WebAssembly.Memory, from: number, to: number): void {
  const bytes = new Uint8Array(memory.buffer);
  for (let p = from; p < to; p += HUGE_PAGE_BYTES) bytes[p] = 0;
}
