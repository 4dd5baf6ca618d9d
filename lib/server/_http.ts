/**
 * HTTP plumbing of the server: OpenAI-style errors, JSON bodies, field validation.
 * @module
 */

/** An error answered as `{ error: { message, type, param, code } }` with `status`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** An OpenAI-style error body. */
export function errorResponse(e: HttpError): Response {
  const headers: Record<string, string> = { ...e.headers };
  if (e.status === 429 || e.status === 503) headers["retry-after"] = "1";
  if (e.status === 401) headers["www-authenticate"] = "Bearer";
  return json(
    { error: { message: e.message, type: e.type, param: e.param, code: e.code } },
    e.status,
    headers,
  );
}

/** 405 with the `Allow` header listing what the path accepts. */
export function methodNotAllowed(method: string, path: string, allow: string[]): HttpError {
  return new HttpError(
    405,
    `${method} is not allowed on ${path}: use ${allow.join(" or ")}`,
    "invalid_request_error",
    null,
    "method_not_allowed",
    { allow: allow.join(", ") },
  );
}

/** The body's bytes, at most `max` (413 beyond). */
export async function readBytes(req: Request, max: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(
      413,
      `request body exceeds ${max} bytes`,
      "invalid_request_error",
      null,
      "body_too_large",
    );
  const len = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(len) && len > max) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const all = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return all;
}

/** A JSON object body (400 otherwise). */
export async function readJson(req: Request, max: number): Promise<Body> {
  const all = await readBytes(req, max);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(all));
  } catch (e) {
    throw new HttpError(400, `the body is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new HttpError(400, "the body must be a JSON object");
  }
  return raw as Body;
}

/** A parsed JSON request body. */
export type Body = Record<string, unknown>;

/** `body[name]` checked by `check` (400 naming the field otherwise); undefined when absent. */
export function field<T>(
  body: Body,
  name: string,
  check: (v: unknown) => v is T,
  what: string,
): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) {
    throw new HttpError(400, `'${name}' must be ${what}`, "invalid_request_error", name);
  }
  return v;
}

export const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
export const isInt = (v: unknown): v is number => Number.isInteger(v);
export const isBool = (v: unknown): v is boolean => typeof v === "boolean";
export const isStr = (v: unknown): v is string => typeof v === "string";

/** 400 naming `name` unless `lo ≤ v ≤ hi`. */
export function range(name: string, v: number | undefined, lo: number, hi: number): void {
  if (v !== undefined && !(v >= lo && v <= hi)) {
    throw new HttpError(
      400,
      `'${name}' must be between ${lo} and ${hi}`,
      "invalid_request_error",
      name,
    );
  }
}

let counter = 0;
/** A fresh id such as `chatcmpl-…` (unique across replicas: random part included). */
export function newId(prefix: string, sep = "-"): string {
  const rand = crypto.getRandomValues(new Uint8Array(8));
  const r = Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}${sep}${Date.now().toString(36)}${(counter++).toString(36)}${r}`;
}

/** Server-sent events: `data: JSON` (and `event: NAME` when given). */
export function sseEvent(data: unknown, event?: string): Uint8Array {
  const head = event ? `event: ${event}\n` : "";
  return new TextEncoder().encode(`${head}data: ${JSON.stringify(data)}\n\n`);
}

/** Headers of an SSE response. */
export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/**
 * A stream controller that ignores writes once the client has gone (a token decoded in the
 * step in flight when it left must not throw inside the scheduler).
 */
export function sink(controller: ReadableStreamDefaultController<Uint8Array>): {
  send: (b: Uint8Array) => void;
  close: () => void;
  fail: (e: unknown) => void;
} {
  let open = true;
  const guard = (f: () => void) => {
    if (!open) return;
    try {
      f();
    } catch {
      open = false; // cancelled by the client
    }
  };
  return {
    send: (b) => guard(() => controller.enqueue(b)),
    close: () => guard(() => (controller.close(), open = false)),
    fail: (e) => guard(() => (controller.error(e), open = false)),
  };
}
