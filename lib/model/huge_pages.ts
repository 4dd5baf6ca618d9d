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
 * module asks, with `madvise(MADV_HUGEPAGE)` through Deno's FFI, for the bytes a memory has
 * committed, again each time it grows. So it needs FFI permission (`--allow-ffi` or `-A`; with
 * `--allow-ffi` alone Deno does not let it read the kernel's THP mode, so it asks regardless and
 * the kernel's answer decides); without it, on other
 * systems, or where the kernel says `never`, nothing changes and the pages stay 4 KiB. The
 * contents of the memory never change: only how the kernel maps them.
 *
 * It is off unless asked for (the `hugePages` load option, `--huge-pages on`; the `chat` and
 * `serve` CLIs ask by default), because the kernel may have to compact memory to find 2 MiB
 * pages: with the page cache full of model files, a 2.9B q8 load took 2.8–10 s instead of
 * 2.5–3.5 s. A server loads once and decodes for hours; a one-shot generation may not win its
 * load back.
 * `RWKV_HUGE_PAGES=1` or `=0` (also `on`/`off`, `true`/`false`) overrides the option for a
 * process.
 * @module
 */

/** `madvise`'s advice asking for transparent huge pages (Linux's MADV_HUGEPAGE). */
const MADV_HUGEPAGE = 14;
/**
 * A huge page: 2 MiB on x86-64 and on arm64 with 4 KiB base pages. An arena with huge pages
 * grows its memories in whole multiples of it, so that every page it commits can be one.
 * @example
 * ```ts
 * import { HUGE_PAGE_BYTES } from "./huge_pages.ts";
 * console.log(HUGE_PAGE_BYTES / 65536); // 32 WebAssembly pages
 * ```
 */
export const HUGE_PAGE_BYTES = 2 * 2 ** 20;

const THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled";
const ENV = "RWKV_HUGE_PAGES";

/** What this module calls in libc. */
const LIBC = { madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" } } as const;
let libc: Deno.DynamicLibrary<typeof LIBC> | null | undefined;
let modeCache: "always" | "madvise" | "never" | "unknown" | undefined;

/** A permission's state, without asking (false where it cannot be read). */
function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/**
 * The kernel's THP mode: `always`, `madvise` or `never`; `unknown` where the file cannot be read
 * (Deno reads /sys only with `-A`, whatever `--allow-read` says): then the advice is given and
 * the kernel's answer decides.
 */
function thpMode(): "always" | "madvise" | "never" | "unknown" {
  if (modeCache) return modeCache;
  if (Deno.build.os !== "linux") return modeCache = "never";
  try {
    const m = /\[(\w+)\]/.exec(Deno.readTextFileSync(THP_MODE))?.[1];
    return modeCache = m === "always" || m === "madvise" ? m : "never";
  } catch (e) {
    // no such file: a kernel without THP; anything else: not allowed to look
    return modeCache = e instanceof Deno.errors.NotFound ? "never" : "unknown";
  }
}

/** libc's `madvise`, or null where it cannot be opened. */
function openLibc(): Deno.DynamicLibrary<typeof LIBC> | null {
  if (libc !== undefined) return libc;
  libc = null;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      libc = Deno.dlopen(name, LIBC);
      break;
    } catch { /* try the next name (musl has libc.so) */ }
  }
  return libc;
}

/**
 * `RWKV_HUGE_PAGES` when set and readable: true for `1`, `on`, `true`, `yes`; false for `0`,
 * `off`, `false`, `no`; undefined otherwise (any other value is ignored).
 */
function fromEnv(): boolean | undefined {
  if (!granted({ name: "env", variable: ENV })) return undefined;
  const v = Deno.env.get(ENV)?.trim().toLowerCase();
  if (v === "1" || v === "on" || v === "true" || v === "yes") return true;
  if (v === "0" || v === "off" || v === "false" || v === "no") return false;
  return undefined;
}

/**
 * Whether a load that says `asked` (its `hugePages` option; default no) will have huge pages:
 * `RWKV_HUGE_PAGES` overrides the option; then the kernel must offer them (Linux, THP mode
 * `madvise` or `always`) and, unless it gives them to everyone (`always`), FFI must be allowed
 * and libc found, to ask. Never throws, never prompts.
 * @example
 * ```ts
 * import { hugePagesWanted } from "./huge_pages.ts";
 * console.log(hugePagesWanted(false)); // false
 * ```
 */
export function hugePagesWanted(asked: boolean | undefined): boolean {
  if (!(fromEnv() ?? asked ?? false)) return false;
  const mode = thpMode();
  if (mode === "never") return false;
  if (mode === "always") return true;
  return granted({ name: "ffi" }) && openLibc() !== null;
}

/**
 * Asks the kernel to back the whole 2 MiB pages within the first `bytes` of `memory` (bytes it
 * has committed: never beyond, so the advice cannot reach a neighbouring mapping) with
 * transparent huge pages. Call it for bytes not yet written: pages already in place stay as they
 * are. Returns false when `madvise` refused; true when it agreed, when there was nothing to
 * advise, and under the kernel's `always` mode (no advice needed). Only after
 * {@link hugePagesWanted} said yes.
 * @example
 * ```ts
 * import { adviseHugePages, hugePagesWanted } from "./huge_pages.ts";
 * const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
 * if (hugePagesWanted(true)) adviseHugePages(memory, memory.buffer.byteLength);
 * ```
 */
export function adviseHugePages(memory: WebAssembly.Memory, bytes: number): boolean {
  if (thpMode() === "always") return true;
  const c = openLibc();
  if (!c) return false;
  try {
    const base = Deno.UnsafePointer.value(
      Deno.UnsafePointer.of(new Uint8Array(memory.buffer)),
    ) as bigint;
    const huge = BigInt(HUGE_PAGE_BYTES);
    const start = (base + huge - 1n) / huge * huge, end = (base + BigInt(bytes)) / huge * huge;
    if (end <= start) return true;
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
