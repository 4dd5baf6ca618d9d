/**
 * The structured-output flags of the CLIs: `--json-schema FILE` and `--grammar FILE`, read and
 * compiled up front so a bad file fails before the model loads (one line, exit 2).
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { compileGbnf, compileJsonSchema, type Grammar, GrammarError } from "../lib/grammar/mod.ts";

/**
 * Reads `--json-schema` / `--grammar` files into the `grammar` option of `generate()`.
 * Errors name the file (and the path or line:col within it).
 * @example
 * ```ts
 * const opts = await readGrammarFlags("person.schema.json", undefined); // { grammar: Grammar }
 * ```
 */
export async function readGrammarFlags(
  jsonSchemaFile: string | undefined,
  grammarFile: string | undefined,
): Promise<{ grammar?: Grammar }> {
  if (jsonSchemaFile !== undefined && grammarFile !== undefined) {
    throw new UsageError("give --json-schema or --grammar, not both");
  }
  const file = jsonSchemaFile ?? grammarFile;
  if (file === undefined) return {};
  const text = await Deno.readTextFile(file);
  try {
    if (grammarFile !== undefined) return { grammar: compileGbnf(text) };
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (e) {
      throw new GrammarError(`malformed JSON (${(e as Error).message})`);
    }
    return { grammar: compileJsonSchema(schema) };
  } catch (e) {
    if (e instanceof GrammarError) throw new GrammarError(`${file}: ${e.message}`, { cause: e });
    throw e;
  }
}
