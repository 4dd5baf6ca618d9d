/**
 * A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise.
 * @module
 */

/** A progress reporter for long work (loading, converting, prompt processing). */
export interface Progress {
  update(done: number, total: number, detail?: string): void;
  finish(message?: string): void;
}

const enc = new TextEncoder();

function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/**
 * Creates a progress bar labelled `label`. `unit: "bytes"` prints sizes; otherwise counts.
 * Silent when `quiet`.
 */
export function progressBar(
  label: string,
  unit: "bytes" | "count" = "count",
  quiet = false,
): Progress {
  const tty = Deno.stderr.isTerminal();
  const start = performance.now();
  let lastDecile = -1, lastDraw = 0;
  const fmt = unit === "bytes" ? fmtBytes : String;
  return {
    update(done, total, detail = "") {
      if (quiet) return;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 80 && done < total) return;
        lastDraw = now;
        const width = 28, fill = Math.round(frac * width);
        const bar = "█".repeat(fill) + "░".repeat(width - fill);
        const line = `\r${label} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${fmt(done)}/${
          fmt(total)
        } ${detail}`.slice(0, 120);
        Deno.stderr.writeSync(enc.encode(line + "\x1b[K"));
      } else {
        const decile = Math.floor(frac * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          Deno.stderr.writeSync(
            enc.encode(`${label}: ${(frac * 100).toFixed(0)}% (${fmt(done)}/${fmt(total)})\n`),
          );
        }
      }
    },
    finish(message) {
      if (quiet) return;
      const secs = ((performance.now() - start) / 1000).toFixed(1);
      const text = `${label}: ${message ?? "done"} in ${secs} s`;
      Deno.stderr.writeSync(enc.encode(tty ? `\r${text}\x1b[K\n` : `${text}\n`));
    },
  };
}
