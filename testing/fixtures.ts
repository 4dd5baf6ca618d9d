/**
 * Where the shared test data lives. Tests that need it are ignored with a visible notice when
 * it is absent, and fail when `RWKV_REQUIRE_FIXTURES=1` (as CI sets).
 * @module
 */

const dir = Deno.env.get("RWKV_FIXTURES") ??
  new URL("../../shared/fixtures", import.meta.url).pathname;

/** True when CI demands fixtures. */
export const REQUIRE_FIXTURES = Deno.env.get("RWKV_REQUIRE_FIXTURES") === "1";

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

const noticed = new Set<string>();

/**
 * Full path of a fixture, or undefined (with a notice on stderr) when it is missing.
 * With RWKV_REQUIRE_FIXTURES=1 a missing fixture throws.
 */
export function fixture(name: string): string | undefined {
  const p = `${dir}/${name}`;
  if (exists(p)) return p;
  if (REQUIRE_FIXTURES) {
    throw new Error(`fixture ${p} is missing and RWKV_REQUIRE_FIXTURES=1`);
  }
  if (!noticed.has(name)) {
    noticed.add(name);
    console.error(`NOTICE: fixture ${p} is missing; tests that need it are skipped`);
  }
  return undefined;
}

/** The fixtures folder. */
export const FIXTURES_DIR: string = dir;

/**
 * Lists fixture files whose names match `re`. When the folder is missing this says so visibly
 * (a NOTICE on stderr and an ignored test named after `what`, so the summary shows the loop
 * that created no tests) and returns `[]`; with RWKV_REQUIRE_FIXTURES=1 it throws instead.
 */
export function listFixtures(re: RegExp, sub = "", what = `fixtures matching ${re}`): string[] {
  const d = sub ? `${dir}/${sub}` : dir;
  if (!exists(d)) {
    if (REQUIRE_FIXTURES) throw new Error(`fixtures folder ${d} is missing (${what})`);
    if (!noticed.has(`${d} ${what}`)) {
      noticed.add(`${d} ${what}`);
      console.error(`NOTICE: fixtures folder ${d} is missing; no tests for ${what}`);
      Deno.test({ name: `${what}: fixtures folder ${d} is missing`, ignore: true, fn() {} });
    }
    return [];
  }
  return [...Deno.readDirSync(d)].map((e) => e.name).filter((n) => re.test(n)).sort();
}

/** A fresh temporary folder for one test, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const d = await Deno.makeTempDir({ prefix: "rwkv-test-" });
  return { dir: d, cleanup: () => Deno.remove(d, { recursive: true }).catch(() => {}) };
}
