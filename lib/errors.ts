/**
 * Typed errors of the toolkit. Every error that comes from bad input names the file and,
 * where there is one, the tensor or field at fault.
 * @module
 */

/**
 * Base class of every error this toolkit throws on purpose.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof RwkvError) console.error(e.message); }
 * ```
 */
export class RwkvError extends Error {
  /** An error with `message`; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RwkvError";
  }
}

/**
 * A file is malformed, truncated or not of the expected format.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof FormatError) console.error(e.message); }
 * ```
 */
export class FormatError extends RwkvError {
  /** The file at fault. */
  readonly file: string;
  /** The tensor, field or offset at fault, when known. */
  readonly field?: string;
  /** The message reads `file: field: message` (the field left out when undefined). */
  constructor(file: string, field: string | undefined, message: string, options?: ErrorOptions) {
    super(`${file}: ${field !== undefined ? `${field}: ` : ""}${message}`, options);
    this.name = "FormatError";
    this.file = file;
    this.field = field;
  }
}

/**
 * A pickle asked for a global outside the allow-list; nothing was executed.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof UnsafePickleError) console.error(e.message); }
 * ```
 */
export class UnsafePickleError extends FormatError {
  /** The refused global, as `module.name`. */
  readonly global: string;
  /** `global` (as `module.name`) was refused while reading `file`. */
  constructor(file: string, global: string) {
    super(file, global, `refusing to load ${global} from file ${file}: not an allowed tensor type`);
    this.name = "UnsafePickleError";
    this.global = global;
  }
}

/**
 * A checkpoint opened fine but does not describe a model we can run.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof ModelError) console.error(e.message); }
 * ```
 */
export class ModelError extends RwkvError {
  /** An error with `message`; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelError";
  }
}

/**
 * A tokenizer file is bad, or does not fit the model.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof TokenizerError) console.error(e.message); }
 * ```
 */
export class TokenizerError extends RwkvError {
  /** An error with `message`; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokenizerError";
  }
}

/**
 * A command-line or API argument is invalid.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try { await loadModel("model.pth"); } catch (e) { if (e instanceof UsageError) console.error(e.message); }
 * ```
 */
export class UsageError extends RwkvError {
  /** An error with `message`; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * A model does not fit: refused before anything large is allocated. The message says how much
 * it needs, how much there is, and which dtype (if any) would fit.
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * try {
 *   await loadModel("rwkv7-g1-13.3b.pth", { dtype: "bf16" });
 * } catch (e) {
 *   if (e instanceof OutOfMemoryError) console.error(e.message, e.fits); // … "q8"
 * }
 * ```
 */
export class OutOfMemoryError extends RwkvError {
  /** Bytes the model needs in the asked dtype. */
  readonly needBytes: number;
  /** Bytes there are: what the system has available, or the backend's limit. */
  readonly availableBytes: number;
  /** The dtype that would fit (the most precise of those smaller than the asked one), if any. */
  readonly fits?: string;
  /** `message` states the figures; `needBytes`, `availableBytes` and `fits` hold them. */
  constructor(message: string, needBytes: number, availableBytes: number, fits?: string) {
    super(message);
    this.name = "OutOfMemoryError";
    this.needBytes = needBytes;
    this.availableBytes = availableBytes;
    this.fits = fits;
  }
}
