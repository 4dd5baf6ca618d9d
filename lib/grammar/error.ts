/**
 * The error of the grammar module.
 * @module
 */

import { RwkvError } from "../errors.ts";

/**
 * A grammar or JSON Schema cannot be compiled (the message names the GBNF `line:col` or the
 * JSON-Schema path and keyword), or a token was given that the grammar does not allow.
 * @example
 * ```ts
 * import { compileGbnf, GrammarError } from "./mod.ts";
 * try {
 *   compileGbnf('root ::= "a" missing');
 * } catch (e) {
 *   if (e instanceof GrammarError) console.log(e.message); // names line 1, column 14
 * }
 * ```
 */
export class GrammarError extends RwkvError {
  /** An error with `message`; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GrammarError";
  }
}
