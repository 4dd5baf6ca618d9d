/**
 * CORS: the headers allowing a browser page of an allowed origin (`--cors`) to call the API.
 * @module
 */

/**
 * The CORS headers of the answer to `req` (none when its origin is not allowed).
 * @example
 * ```ts
 * declare const req: Request, res: Response;
 * for (const [k, v] of Object.entries(corsHeaders(new Set(["*"]), req))) res.headers.set(k, v);
 * ```
 */
export function corsHeaders(cors: ReadonlySet<string>, req: Request): Record<string, string> {
  const origin = req.headers.get("origin");
  if (!origin || !(cors.has("*") || cors.has(origin))) return {};
  return {
    "access-control-allow-origin": cors.has("*") ? "*" : origin,
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
      "authorization, content-type",
    "access-control-max-age": "600",
    vary: "origin",
  };
}
