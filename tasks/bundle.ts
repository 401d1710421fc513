/**
 * `deno task bundle OUT DB`: the stack's programs, each in one file, as the
 * image runs them (Dockerfile) and the tests run them as another user:
 * `OUT/worker.js` (main.ts), `OUT/stack.js`, `OUT/flags.js` (the
 * permission flags), and the country database at `DB`, a file that
 * worker.js imports as bytes. Inlined, the 7.8 MB database would be 10.5 MB
 * of base64 that every worker parses (over 100 MB each, docs/geo.md).
 *
 * @module
 */

const PROJECT_DIR = new URL("..", import.meta.url).pathname;

/** The database's specifier in main.ts's module graph (service/geo_db.ts). */
export const GEO_DB =
  "@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

async function deno(args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: PROJECT_DIR,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** Writes the three programs to `out` and the database to `db`. */
export async function bundle(out: string, db: string): Promise<void> {
  const to = (name: string, entry: string, ...flags: string[]) =>
    deno([
      "bundle",
      "--frozen",
      "--quiet",
      ...flags,
      "-o",
      `${out}/${name}`,
      entry,
    ]);
  await Deno.mkdir(out, { recursive: true });
  await Deno.mkdir(db.slice(0, db.lastIndexOf("/")) || "/", {
    recursive: true,
  });
  await to("worker.js", "main.ts", "--external", "@ip-location-db/*");
  await to("stack.js", "stack.ts");
  await to("flags.js", "tasks/flags.ts");
  await deno([
    "eval",
    "--frozen",
    "--cached-only",
    "--unstable-raw-imports",
    `--allow-write=${db}`,
    `import b from ${JSON.stringify(GEO_DB)} with { type: "bytes" };
     Deno.writeFileSync(${JSON.stringify(db)}, b);`,
  ]);
  const worker = `${out}/worker.js`;
  const text = await Deno.readTextFile(worker);
  const linked = text.replaceAll(JSON.stringify(GEO_DB), JSON.stringify(db));
  if (linked === text || linked.includes('from "@ip-location-db/')) {
    throw new Error(`worker.js does not import ${GEO_DB} once`);
  }
  await Deno.writeTextFile(worker, linked);
}

if (import.meta.main) {
  const [out, db] = Deno.args;
  if (!out || !db) {
    console.error("usage: deno task bundle OUT_DIR DB_PATH");
    Deno.exit(2);
  }
  await bundle(out, db);
}
