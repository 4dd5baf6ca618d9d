/**
 * `/v1/states/{name}`: named states read (`GET`, also those loaded at start-up), stored (`PUT`,
 * the binary `State` format of this model) and deleted (`DELETE`).
 * @module
 */

import { type Core, withStore } from "./_core.ts";
import { HttpError, json, methodNotAllowed, readBytes } from "./_http.ts";
import { decodeState, encodeState } from "./states.ts";

/**
 * Answers a request on the named state `name`.
 * @example
 * ```ts
 * import type { Core } from "./_core.ts";
 * declare const core: Core, req: Request;
 * const res = await handleStates(core, req, "my-persona");
 * ```
 */
export async function handleStates(core: Core, req: Request, name: string): Promise<Response> {
  if (!/^[\w.-]{1,128}$/.test(name)) {
    throw new HttpError(400, "a state name is letters, digits, . _ - (at most 128)");
  }
  const b = await core.bank();
  const key = `named:${name}`;
  if (req.method === "GET") {
    const fixed = core.namedStates.get(name);
    const bytes = fixed
      ? encodeState(b.identity, fixed, { name })
      : await withStore(() => b.store.get(key));
    if (!bytes) {
      throw new HttpError(404, `no state named '${name}'`, undefined, null, "state_not_found");
    }
    return new Response(bytes, {
      headers: { "content-type": "application/octet-stream", "x-rwkv-model": b.identity },
    });
  }
  if (req.method === "PUT") {
    if (core.namedStates.has(name)) {
      throw new HttpError(409, `state '${name}' was loaded at start-up and cannot be replaced`);
    }
    const bytes = await readBytes(req, Math.max(core.maxBody, 64 * 1024 * 1024));
    const { state } = await withStore(() =>
      Promise.resolve().then(() => decodeState(core.model, b.identity, bytes, true))
    );
    await withStore(() => b.save(key, state, { name }, 0));
    return json({ object: "state", id: name, model: core.modelName, bytes: state.data.byteLength });
  }
  if (req.method === "DELETE") {
    if (core.namedStates.has(name)) {
      throw new HttpError(409, `state '${name}' was loaded at start-up and cannot be deleted`);
    }
    const deleted = await withStore(() => b.store.delete(key));
    if (!deleted) {
      throw new HttpError(404, `no state named '${name}'`, undefined, null, "state_not_found");
    }
    return json({ object: "state.deleted", id: name, deleted: true });
  }
  throw methodNotAllowed(req.method, `/v1/states/${name}`, ["GET", "PUT", "DELETE"]);
}
