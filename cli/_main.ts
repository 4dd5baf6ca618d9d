/**
 * The entry point every CLI shares: run `main`, exit with its code. Expected failures (a bad
 * flag or option, a missing or unreadable file, a malformed checkpoint: our own errors and the
 * file-system ones) print one clear line and exit 2; anything else is a bug and keeps its trace.
 * @module
 */

import { RwkvError } from "../lib/errors.ts";

/** File-system errors that mean bad input, not a bug. */
const INPUT_ERRORS = [
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.IsADirectory,
  Deno.errors.NotADirectory,
  Deno.errors.AlreadyExists,
  Deno.errors.InvalidData,
];

/** The one line an expected failure prints, or undefined for a bug. */
export function failureLine(e: unknown): string | undefined {
  if (e instanceof RwkvError) return `error: ${e.message}`;
  if (INPUT_ERRORS.some((c) => e instanceof c)) return `error: ${(e as Error).message}`;
  return undefined;
}

/** Runs a CLI's `main(argv)` and exits the process. */
export async function runCli(main: (argv: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    const line = failureLine(e);
    if (line === undefined) throw e;
    console.error(line);
    Deno.exit(2);
  }
}
