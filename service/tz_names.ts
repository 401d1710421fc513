/**
 * What the runtime's time-zone data (Temporal, ICU) does not say: the tz
 * database's canonical names and links, its abbreviations (`EST`, `BST`,
 * `+0545`; ICU's short names are CLDR's, often `GMT+1`), its zones per
 * country and their populations. All from the tz database as packed by
 * `moment-timezone`'s `data/packed/latest.json` (pinned in deno.json; the
 * tzdb release is {@linkcode TZDB_VERSION}). Offsets and transitions still
 * come from Temporal: an abbreviation is picked by the offset Temporal
 * gives, so the two sources cannot contradict each other.
 *
 * @module
 */
import packed from "moment-timezone/data/packed/latest.json" with {
  type: "json",
};

interface Packed {
  version: string;
  zones: string[];
  links: string[];
  countries: string[];
}

interface ZoneInfo {
  /** The most recent abbreviation the zone used for each offset (minutes east). */
  abbreviations: Map<number, string>;
  /** People living in the zone (tzdb's estimate), for best guesses. */
  population: number;
}

const data = packed as Packed;

/** The tz database release the names and abbreviations come from. */
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
function unpack(line: string): [string, ZoneInfo] {
  const [name, abbrs, offsets, indices, , population] = line.split("|");
  const names = abbrs.split(" ");
  const minutes = offsets.split(" ").map((o) => -Math.round(base60(o)));
  const abbreviations = new Map<number, string>();
  for (const i of indices) {
    const index = base60(i);
    abbreviations.set(minutes[index], names[index]);
  }
  return [name, { abbreviations, population: Number(population ?? 0) }];
}

const ZONES = new Map(data.zones.map(unpack));

// Lower-case name (zone or link) → canonical zone name.
const CANONICAL = new Map<string, string>();
for (const name of ZONES.keys()) CANONICAL.set(name.toLowerCase(), name);
for (const link of data.links) {
  const [target, alias] = link.split("|");
  CANONICAL.set(alias.toLowerCase(), target);
}

/** The canonical zone names, sorted (worldtimeapi's `/api/timezone`). */
export const ZONE_NAMES: readonly string[] = [...ZONES.keys()].sort();

/**
 * The canonical name of a zone or link, matched case-insensitively
 * (`asia/calcutta` → `Asia/Kolkata`), or undefined.
 */
export function canonicalName(name: string): string | undefined {
  return CANONICAL.get(name.toLowerCase());
}

/**
 * The abbreviation the tz database writes for `zone` at an offset of
 * `offsetMinutes` east of UTC, or tzdb's numeric form (`+0545`, `-03`)
 * when the zone never used a name for it.
 */
export function abbreviation(zone: string, offsetMinutes: number): string {
  const named = ZONES.get(zone)?.abbreviations.get(offsetMinutes);
  if (named !== undefined) return named;
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = abs % 60 === 0 ? "" : String(abs % 60).padStart(2, "0");
  return sign + hh + mm;
}

// ISO 3166-1 alpha-2 → the country's canonical zones, most populous first.
const BY_COUNTRY = new Map<string, string[]>();
for (const line of data.countries) {
  const [code, zones] = line.split("|");
  const canonical = [
    ...new Set(zones.split(" ").map((z) => canonicalName(z)!)),
  ];
  const people = (z: string) => ZONES.get(z)?.population ?? 0;
  BY_COUNTRY.set(code, canonical.sort((a, b) => people(b) - people(a)));
}

/**
 * The canonical zones of a country (ISO 3166-1 alpha-2), most populous
 * first; empty for a code the tz database does not know.
 */
export function countryZones(country: string): readonly string[] {
  return BY_COUNTRY.get(country) ?? [];
}
