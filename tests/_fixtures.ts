/**
 * Moved to `testing/fixtures.ts` (shared by tests/ and bench/); this re-export keeps branches written
 * before the move working. Import `../testing/fixtures.ts` in new code; the file goes once they land.
 * @module
 */
export * from "../testing/fixtures.ts";
