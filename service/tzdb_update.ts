/**
 * Writes service/tzdb.json, all the service ships about time zones, from one
 * tz release: moment-timezone's packed data (pinned in deno.json) without the
 * transition times (`untils`), which the runtime has and tz_names.ts does not
 * read (a worker holds 160 KB instead of 710 KB), and each alias's primary
 * name. Pin the release the runtime's ICU carries: tzdb_test.ts fails while
 * the two disagree. After changing it: `deno run -A service/tzdb_update.ts`.
 *
 * @module
 */
import packed from "moment-timezone/data/packed/latest.json" with {
  type: "json",
};
import meta from "moment-timezone/data/meta/latest.json" with { type: "json" };

/** The packed data as tz_names.ts reads it. */
export interface PackedTzdb {
  /** The tz database release, e.g. `2025b`. */
  version: string;
  /** `name|abbrs|offsets|indices|untils|population`, untils emptied. */
  zones: string[];
  /** `target|alias`: the alias uses the target's data. */
  links: string[];
  /** `CC|Zone Zone…`. */
  countries: string[];
  /** `alias|primary`: another name of the zone, and its primary name. */
  aliases: string[];
}

/** Every name of the release (zones and links), and the zone holding its data. */
export function dataZones(): Map<string, string> {
  const names = new Map<string, string>();
  for (const line of packed.zones) {
    const name = line.slice(0, line.indexOf("|"));
    names.set(name, name);
  }
  for (const link of packed.links) {
    const [target, alias] = link.split("|");
    names.set(alias, target);
  }
  return names;
}

/** The names zone.tab lists for a country: each is a primary name. */
export const ZONE_TAB: ReadonlySet<string> = new Set(Object.keys(meta.zones));

/**
 * `alias|primary` for each name that is not its zone's primary, by
 * ECMA-402's rule: names that share their data and that the runtime calls
 * one zone are one zone, its primary name is the one zone.tab lists (UTC's
 * names: `UTC`), and a zone without one keeps each name. Throws when a zone
 * has two names in zone.tab or the runtime does not know a name.
 */
export function primaryNames(
  runtimeId: (name: string) => string = (name) =>
    new Intl.DateTimeFormat("en", { timeZone: name }).resolvedOptions()
      .timeZone,
): string[] {
  const zones = new Map<string, string[]>();
  for (const [name, data] of dataZones()) {
    const zone = `${data} ${runtimeId(name)}`;
    zones.set(zone, [...zones.get(zone) ?? [], name]);
  }
  const aliases: string[] = [];
  for (const [zone, names] of zones) {
    const listed = zone.endsWith(" UTC")
      ? ["UTC"]
      : names.filter((name) => ZONE_TAB.has(name));
    if (listed.length > 1) {
      throw new Error(`one zone, two primary names: ${listed.join(", ")}`);
    }
    for (const name of names) {
      if (listed.length === 1 && name !== listed[0]) {
        aliases.push(`${name}|${listed[0]}`);
      }
    }
  }
  return aliases.sort();
}

/** The pinned package's data without its transition times. */
export function strippedTzdb(): PackedTzdb {
  return {
    version: packed.version,
    zones: packed.zones.map((line) => {
      const fields = line.split("|");
      fields[4] = "";
      return fields.join("|");
    }),
    links: packed.links,
    countries: packed.countries,
    aliases: primaryNames(),
  };
}

if (import.meta.main) {
  const path = new URL("./tzdb.json", import.meta.url);
  await Deno.writeTextFile(path, JSON.stringify(strippedTzdb()) + "\n");
}
