/**
 * A process's peak resident memory, for the benchmarks that report it beside issue 26's bound
 * (1.05 × the weights in memory + 512 MiB).
 * @module
 */

/**
 * The process's peak RSS in MiB (`VmHWM` on Linux; else the current RSS).
 * @example
 * ```ts
 * console.log(`${Math.round(peakRssMiB())} MiB at most so far`);
 * ```
 */
export function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/**
 * Resets the peak to the current RSS (`/proc/self/clear_refs`, Linux ≥ 4.0), so that
 * {@link peakRssMiB} then measures what follows; false where that is not allowed.
 * @example
 * ```ts
 * if (resetPeakRss()) console.log("peak RSS measured from here");
 * ```
 */
export function resetPeakRss(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * MiB of the process's anonymous memory the kernel maps with transparent huge pages
 * (`AnonHugePages` of /proc/self/smaps_rollup; 0 where it cannot be read): the weights' memories
 * when `lib/model/huge_pages.ts` got them.
 * @example
 * ```ts
 * console.log(`${anonHugeMiB()} MiB in huge pages`);
 * ```
 */
export function anonHugeMiB(): number {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/smaps_rollup"));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch { /* not Linux */ }
  return 0;
}
