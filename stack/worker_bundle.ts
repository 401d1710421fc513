/**
 * The workers' program: main.ts in one file (`deno bundle`), with the
 * country database beside it as a file that the bundle imports as bytes.
 * Inlined, the 7.8 MB database would be 10.5 MB of base64 that every
 * worker parses (over 100 MB each, docs/geo.md); the image does the same
 * with its own paths (Dockerfile).
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PROJECT_DIR = new URL("..", import.meta.url).pathname;

/** The database's specifier in main.ts's module graph (service/geo_db.ts). */
export const GEO_DB =
  "@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

/** The environment a worker needs to import the database as bytes. */
export const WORKER_ENV = { DENO_UNSTABLE_RAW_IMPORTS: "1" };

async function deno(args: string[]): Promise<string | undefined> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: PROJECT_DIR,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return out.success ? undefined : new TextDecoder().decode(out.stderr).trim();
}

/**
 * Writes the workers' program to `output` and the database to `db`;
 * resolves with why it could not, or undefined.
 */
export async function bundleWorker(
  output: string,
  db: string,
): Promise<string | undefined> {
  const failed = await deno([
    "bundle",
    "--frozen",
    "--quiet",
    "--external",
    "@ip-location-db/*",
    "--output",
    output,
    MAIN,
  ]) ?? await deno([
    "eval",
    "--frozen",
    "--cached-only",
    "--unstable-raw-imports",
    `--allow-write=${db}`,
    `import b from ${JSON.stringify(GEO_DB)} with { type: "bytes" };
     Deno.writeFileSync(${JSON.stringify(db)}, b);`,
  ]);
  if (failed) return failed;
  const text = await Deno.readTextFile(output);
  const linked = text.replaceAll(JSON.stringify(GEO_DB), JSON.stringify(db));
  if (linked === text) return `the bundle does not import ${GEO_DB}`;
  await Deno.writeTextFile(output, linked);
  return undefined;
}
