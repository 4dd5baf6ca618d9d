/**
 * Moved to `testing/services.ts` (shared by tests/ and bench/); this re-export keeps branches written
 * before the move working. Import `../testing/services.ts` in new code; the file goes once they land.
 * @module
 */
export * from "../testing/services.ts";
