/**
 * Writes service/tzdb.json: the tz database as moment-timezone packs it
 * (`data/packed/latest.json`, pinned in deno.json), without the transition
 * times (`untils`), which Temporal has and tz_names.ts does not read. A
 * fifth of the size, so a worker holds 159 KB instead of 729 KB. After
 * updating moment-timezone: `deno run -A service/tzdb_update.ts`;
 * tzdb_test.ts fails until the file matches the pinned package.
 *
 * @module
 */
import packed from "moment-timezone/data/packed/latest.json" with {
  type: "json",
};

/** The packed data as tz_names.ts reads it. */
export interface PackedTzdb {
  /** The tz database release, e.g. `2026f`. */
  version: string;
  /** `name|abbrs|offsets|indices|untils|population`, untils emptied. */
  zones: string[];
  /** `target|alias`. */
  links: string[];
  /** `CC|Zone Zone…`. */
  countries: string[];
}

/** The pinned package's data without its transition times. */
export function strippedTzdb(): PackedTzdb {
  const data = packed as PackedTzdb;
  return {
    version: data.version,
    zones: data.zones.map((line) => {
      const fields = line.split("|");
      fields[4] = "";
      return fields.join("|");
    }),
    links: data.links,
    countries: data.countries,
  };
}

if (import.meta.main) {
  const path = new URL("./tzdb.json", import.meta.url);
  await Deno.writeTextFile(path, JSON.stringify(strippedTzdb()) + "\n");
}
