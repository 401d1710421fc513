/**
 * The tz database as the service ships it, one release
 * ({@linkcode TZDB_VERSION}, the one the runtime's ICU carries: tzdb_test.ts
 * fails when they differ): each zone's names and which is primary, its
 * abbreviations (`EST`, `BST`, `+0545`; ICU's short names are CLDR's, often
 * `GMT+1`), the zones per country and their populations. Kept in tzdb.json
 * (tzdb_update.ts writes it from moment-timezone). Offsets and transitions
 * come from Temporal: an abbreviation is picked by the offset Temporal
 * gives, so the two cannot contradict each other.
 *
 * @module
 */
import packed from "./tzdb.json" with { type: "json" };
import type { PackedTzdb } from "./tzdb_update.ts";

interface ZoneInfo {
  /** The most recent abbreviation the zone used for each offset (minutes east). */
  abbreviations: Map<number, string>;
  /** People living in the zone (tzdb's estimate), for best guesses. */
  population: number;
}

const data: PackedTzdb = packed;

/** The tz database release of every zone name, abbreviation and offset. */
export const TZDB_VERSION: string = data.version;

// moment's base-60 digits: 0-9, a-z, A-X.
function base60(text: string): number {
  const sign = text.startsWith("-") ? -1 : 1;
  const [whole, fraction = ""] = text.replace(/^-/, "").split(".");
  const digit = (c: string) => {
    const code = c.charCodeAt(0);
    return code > 96 ? code - 87 : code > 64 ? code - 29 : code - 48;
  };
  let value = 0;
  for (const c of whole) value = value * 60 + digit(c);
  let scale = 1;
  for (const c of fraction) value += digit(c) * (scale /= 60);
  return sign * value;
}

// "name|abbrs|offsets|indices|untils|population": offsets are minutes
// west of UTC; the last index using an offset is its current abbreviation.
function unpack(line: string): ZoneInfo {
  const [, abbrs, offsets, indices, , population] = line.split("|");
  const names = abbrs.split(" ");
  const minutes = offsets.split(" ").map((o) => -Math.round(base60(o)));
  // In the order each was last used, so the most recent name wins.
  const used = [...new Set(indices)].sort((a, b) =>
    indices.lastIndexOf(a) - indices.lastIndexOf(b)
  );
  const abbreviations = new Map<number, string>();
  for (const i of used) {
    abbreviations.set(minutes[base60(i)], names[base60(i)]);
  }
  return { abbreviations, population: Number(population ?? 0) };
}

// Each zone's packed line, unpacked on first use: unpacking all of them at
// start would cost a worker megabytes it never needs.
const LINES = new Map(
  data.zones.map((line) => [line.slice(0, line.indexOf("|")), line]),
);
const unpacked = new Map<string, ZoneInfo>();
function zoneInfo(zone: string): ZoneInfo | undefined {
  let info = unpacked.get(zone);
  if (info === undefined) {
    const line = LINES.get(zone);
    if (line === undefined) return undefined;
    info = unpack(line);
    unpacked.set(zone, info);
  }
  return info;
}

// Lower-case name (zone or link) → the packed zone that holds its data:
// moment-timezone packs zones alike since 1970 as one (Europe/Oslo's data
// is Europe/Berlin's), so this says where the abbreviations are, not which
// name to answer with.
const DATA_ZONE = new Map<string, string>();
// Lower-case name (zone or link) → its spelling in the tz database.
const SPELLING = new Map<string, string>();
for (const name of LINES.keys()) {
  DATA_ZONE.set(name.toLowerCase(), name);
  SPELLING.set(name.toLowerCase(), name);
}
for (const link of data.links) {
  const [target, alias] = link.split("|");
  DATA_ZONE.set(alias.toLowerCase(), target);
  SPELLING.set(alias.toLowerCase(), alias);
}
const PRIMARY = new Map(
  data.aliases.map((line) => line.split("|") as [string, string]),
);

function dataOf(zone: string): ZoneInfo | undefined {
  const packedZone = DATA_ZONE.get(zone.toLowerCase());
  return packedZone === undefined ? undefined : zoneInfo(packedZone);
}

/**
 * The primary name of a zone, given any of its names in any case, or
 * undefined: `europe/berlin` is `Europe/Berlin`, `Asia/Calcutta` is
 * `Asia/Kolkata`, `Etc/GMT` is `UTC` (as ECMA-402 names it), and
 * `Europe/Oslo` stays itself although it shares Berlin's rules.
 */
export function canonicalZone(name: string): string | undefined {
  const spelled = SPELLING.get(name.toLowerCase());
  return spelled === undefined ? undefined : PRIMARY.get(spelled) ?? spelled;
}

/**
 * {@linkcode canonicalZone} as worldtimeapi names zones: UTC is `Etc/UTC`,
 * as in the tz database.
 */
export function canonicalName(name: string): string | undefined {
  const zone = canonicalZone(name);
  return zone === "UTC" ? "Etc/UTC" : zone;
}

let names: readonly string[] | undefined;
/** The canonical zone names, sorted (worldtimeapi's `/api/timezone`). */
export function zoneNames(): readonly string[] {
  names ??= [
    ...new Set([...SPELLING.values()].map((name) => canonicalName(name)!)),
  ].sort();
  return names;
}

/**
 * The abbreviation the tz database writes for `zone` at an offset of
 * `offsetMinutes` east of UTC, or tzdb's numeric form (`+0545`, `-03`)
 * when the zone never used a name for it.
 */
export function abbreviation(zone: string, offsetMinutes: number): string {
  const named = dataOf(zone)?.abbreviations.get(offsetMinutes);
  if (named !== undefined) return named;
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = abs % 60 === 0 ? "" : String(abs % 60).padStart(2, "0");
  return sign + hh + mm;
}

// ISO 3166-1 alpha-2 → "CC|Zone Zone…", sorted on first use per country.
const COUNTRY_LINES = new Map(
  data.countries.map((line) => [line.slice(0, line.indexOf("|")), line]),
);
const byCountry = new Map<string, string[]>();

/**
 * The canonical zones of a country (ISO 3166-1 alpha-2), most populous
 * first; empty for a code the tz database does not know.
 */
export function countryZones(country: string): readonly string[] {
  let zones = byCountry.get(country);
  if (zones === undefined) {
    const line = COUNTRY_LINES.get(country);
    if (line === undefined) return [];
    const names = line.slice(line.indexOf("|") + 1).split(" ");
    zones = [...new Set(names.map((z) => canonicalName(z)!))];
    const people = (z: string) => dataOf(z)?.population ?? 0;
    zones.sort((a, b) => people(b) - people(a));
    byCountry.set(country, zones);
  }
  return zones;
}
