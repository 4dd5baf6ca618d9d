/**
 * The entry point every CLI shares: run `main`, exit with its code; our own errors print one
 * clear line (exit 2 for bad usage, 1 for bad input); anything else is a bug and keeps its trace.
 * @module
 */

import { RwkvError, UsageError } from "../lib/errors.ts";

/** Runs a CLI's `main(argv)` and exits the process. */
export async function runCli(main: (argv: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof RwkvError) {
      console.error(`error: ${e.message}`);
      Deno.exit(e instanceof UsageError ? 2 : 1);
    }
    throw e;
  }
}
