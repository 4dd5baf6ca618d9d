/**
 * Which handler answers which path and method, after the API key check for `/v1/*`; the chat
 * page at `/`.
 * @module
 */

import { checkModel, type Core } from "./_core.ts";
import { handleCompletions } from "./_completions.ts";
import { HttpError, json, methodNotAllowed } from "./_http.ts";
import { handleStates } from "./_named_states.ts";
import type { PrefixCache } from "./_prefix_cache.ts";
import { handleResponses } from "./_responses.ts";

/** What the routes answer from. */
export interface Routes {
  readonly core: Core;
  /** When set, `/v1/*` needs `Authorization: Bearer <apiKey>`. */
  readonly apiKey: string | undefined;
  readonly prefixes: PrefixCache;
  /** The `/health` report. */
  health(): Promise<Response>;
}

let pageCache: string | undefined;
async function page(): Promise<string> {
  if (pageCache === undefined) {
    const res = await fetch(new URL("./static/index.html", import.meta.url));
    if (!res.ok) throw new Error(`chat page: HTTP ${res.status}`);
    pageCache = await res.text();
  }
  return pageCache;
}

function modelObject(core: Core, id: string) {
  return { id, object: "model", created: core.created, owned_by: "rwkv-deno" };
}

/**
 * Answers `req` (its path without trailing slashes) or throws an `HttpError`.
 * @example
 * ```ts
 * declare const routes: Routes, req: Request;
 * const res = await route(routes, req, "/v1/models");
 * ```
 */
export async function route(ctx: Routes, req: Request, path: string): Promise<Response> {
  const { core } = ctx;
  const only = (...methods: string[]) => {
    if (!methods.includes(req.method)) throw methodNotAllowed(req.method, path, methods);
  };
  if (path === "/" || path === "/index.html") {
    only("GET", "HEAD");
    return new Response(await page(), {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  }
  if (path === "/health") {
    only("GET", "HEAD");
    return await ctx.health();
  }
  if (!path.startsWith("/v1/")) {
    throw new HttpError(404, `no route ${req.method} ${path}`, undefined, null, "not_found");
  }
  if (ctx.apiKey !== undefined) {
    const auth = req.headers.get("authorization") ?? "";
    if (auth !== `Bearer ${ctx.apiKey}`) {
      throw new HttpError(
        401,
        "invalid or missing API key (Authorization: Bearer …)",
        "invalid_request_error",
        null,
        "invalid_api_key",
      );
    }
  }
  if (path === "/v1/models") {
    only("GET");
    return json({ object: "list", data: [...core.names].map((n) => modelObject(core, n)) });
  }
  const m = /^\/v1\/models\/(.+)$/.exec(path);
  if (m) {
    only("GET");
    const id = decodeURIComponent(m[1]);
    checkModel(core, id);
    return json(modelObject(core, id));
  }
  if (path === "/v1/completions" || path === "/v1/chat/completions") {
    only("POST");
    return await handleCompletions(core, ctx.prefixes, req, path === "/v1/chat/completions");
  }
  if (path === "/v1/responses" || path.startsWith("/v1/responses/")) {
    return await handleResponses(core, req, path);
  }
  const st = /^\/v1\/states\/([^/]+)$/.exec(path);
  if (st) return await handleStates(core, req, decodeURIComponent(st[1]));
  throw new HttpError(404, `no route ${req.method} ${path}`, undefined, null, "not_found");
}
