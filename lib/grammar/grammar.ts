/**
 * {@link Grammar}: a compiled grammar, immutable and shared by every sequence that follows it;
 * {@link compileGbnf} makes one from GBNF text (cached by text).
 * @module
 */

import { GrammarError } from "./error.ts";
import { parseGbnf } from "./gbnf.ts";
import { Engine } from "./matcher.ts";
import { lower, type Program } from "./program.ts";

/** An engine is renewed past this many states (its transition table then holds 20 MiB). */
const ENGINE_LIMIT = 20_000;

/**
 * A compiled grammar. Immutable and safe to share across requests and sequences; each
 * sequence follows it with its own {@link Constraint}. Make one with {@link compileGbnf},
 * `compileJsonSchema` or `jsonObjectGrammar`.
 * @example
 * ```ts
 * import { compileGbnf } from "./mod.ts";
 * const g = compileGbnf('root ::= "yes" | "no"');
 * console.log(g.gbnf); // the GBNF text it was compiled from
 * ```
 */
export class Grammar {
  /** The GBNF text of the grammar (for a JSON Schema, the text it was converted to). */
  readonly gbnf: string;
  /** The name of the start rule. */
  readonly root: string;
  readonly #program: Program;
  #engine: Engine | undefined;

  /** Compiles GBNF `text` starting at rule `root`; throws {@link GrammarError} when bad. */
  constructor(text: string, root = "root") {
    if (typeof text !== "string") throw new GrammarError("a grammar must be GBNF text");
    this.gbnf = text;
    this.root = root;
    this.#program = lower(parseGbnf(text), root);
    engines.set(this, () => {
      if (!this.#engine || this.#engine.size > ENGINE_LIMIT) {
        this.#engine = new Engine(this.#program);
      }
      return this.#engine;
    });
  }
}

const engines = new WeakMap<Grammar, () => Engine>();

/** The matcher engine of `grammar` (a fresh one when the last grew too big). */
export function engineOf(grammar: Grammar): Engine {
  const get = engines.get(grammar);
  if (!get) throw new GrammarError("not a compiled Grammar");
  return get();
}

/** A small cache of compiled grammars by their source text, most recently used last. */
export class GrammarCache {
  #map = new Map<string, Grammar>();
  #limit: number;

  constructor(limit = 64) {
    this.#limit = limit;
  }

  /** The grammar under `key`, made by `make` when missing. */
  get(key: string, make: () => Grammar): Grammar {
    let g = this.#map.get(key);
    if (g) this.#map.delete(key);
    else g = make();
    this.#map.set(key, g);
    if (this.#map.size > this.#limit) this.#map.delete(this.#map.keys().next().value!);
    return g;
  }
}

const gbnfCache = new GrammarCache();

/**
 * Compiles a grammar in llama.cpp's GBNF format (see `grammars/README.md` in llama.cpp):
 * `name ::= …` rules, literals, character classes, `.`, groups, `*` `+` `?` `{m,n}`. Compiled
 * grammars are cached by text. Errors ({@link GrammarError}) name `line:col`.
 * @example
 * ```ts
 * import { compileGbnf } from "./mod.ts";
 * const g = compileGbnf(`
 * root ::= answer "."
 * answer ::= "yes" | "no" | [0-9]{1,3}
 * `);
 * console.log(g.root); // "root"
 * ```
 */
export function compileGbnf(text: string, root = "root"): Grammar {
  return gbnfCache.get(`${root}\n${text}`, () => new Grammar(text, root));
}
