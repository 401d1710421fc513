/**
 * worldtimeapi.org's answers, so that its clients work by changing only the
 * host: the zone list (`/api/timezone`, by area), one zone's time
 * (`/api/timezone/{area}/{location}[/{region}]`) and the caller's or an
 * address's (`/api/ip[/{address}]`), each also as `.txt`. Fields, order,
 * types and formats as worldtimeapi documents them (docs/worldtime.md).
 *
 * @module
 */
import {
  abbreviation,
  canonicalName,
  countryZones,
  zoneNames,
} from "./tz_names.ts";

/** worldtimeapi's time object, in its field order. */
export interface WorldTime {
  /** As the tz database writes it: `EST`, `BST`, `+0545`. */
  abbreviation: string;
  /** The caller's address. */
  client_ip: string;
  /** Local time, six fractional digits, `±HH:MM`. */
  datetime: string;
  /** Sunday 0 … Saturday 6. */
  day_of_week: number;
  /** 1 … 366. */
  day_of_year: number;
  /** Whether daylight saving time is in effect. */
  dst: boolean;
  /** When the current DST period began (UTC), or null outside DST. */
  dst_from: string | null;
  /** Seconds added by DST now (0 outside DST). */
  dst_offset: number;
  /** When the current DST period ends (UTC), or null outside DST. */
  dst_until: string | null;
  /** The standard offset in seconds. */
  raw_offset: number;
  /** The canonical zone name. */
  timezone: string;
  /** Whole seconds since the epoch. */
  unixtime: number;
  /** UTC, six fractional digits, `+00:00`. */
  utc_datetime: string;
  /** `±HH:MM`. */
  utc_offset: string;
  /** ISO 8601 week of the year. */
  week_number: number;
}

/** The error worldtimeapi answers for a zone or area it does not know. */
export const UNKNOWN_LOCATION = "unknown location";

// Microseconds, as worldtimeapi prints; the clock has sub-millisecond parts.
function instantOf(epochMs: number): Temporal.Instant {
  return Temporal.Instant.fromEpochNanoseconds(
    BigInt(Math.floor(epochMs * 1000)) * 1000n,
  );
}

// A transition instant as worldtimeapi writes it: UTC, whole seconds.
function utcSeconds(at: Temporal.ZonedDateTime | null): string | null {
  if (at === null) return null;
  return at.toInstant().toString({ smallestUnit: "second", timeZone: "UTC" });
}

/**
 * The time object of canonical zone `zone` at `epochMs` (sub-millisecond
 * allowed), for a caller at `clientIp`. The standard offset is the smaller
 * of the zone's January and July offsets that year (southern summers fall
 * in January), as `/time` decides `dst`.
 */
export function worldTime(
  zone: string,
  epochMs: number,
  clientIp: string,
): WorldTime {
  const instant = instantOf(epochMs);
  const local = instant.toZonedDateTimeISO(zone);
  const offsetIn = (month: number) =>
    local.with({ month, day: 1 }).offsetNanoseconds;
  const standard = Math.min(offsetIn(1), offsetIn(7)) / 1e9;
  const offset = local.offsetNanoseconds / 1e9;
  const dst = offset > standard;
  return {
    abbreviation: abbreviation(zone, Math.round(offset / 60)),
    client_ip: clientIp,
    datetime: local.toString({
      fractionalSecondDigits: 6,
      timeZoneName: "never",
    }),
    day_of_week: local.dayOfWeek % 7,
    day_of_year: local.dayOfYear,
    dst,
    dst_from: dst ? utcSeconds(local.getTimeZoneTransition("previous")) : null,
    dst_offset: dst ? offset - standard : 0,
    dst_until: dst ? utcSeconds(local.getTimeZoneTransition("next")) : null,
    raw_offset: standard,
    timezone: zone,
    unixtime: Math.floor(epochMs / 1000),
    utc_datetime: instant.toString({
      fractionalSecondDigits: 6,
      timeZone: "UTC",
    }),
    utc_offset: local.offset,
    week_number: local.weekOfYear!,
  };
}

/** An object as worldtimeapi's `.txt`: `key: value` a line, null empty. */
export function worldTimeText(fields: object): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key}: ${value ?? ""}`)
    .join("\n");
}

/**
 * What a path under `/api/timezone` names: the list of all zones, of an
 * area's (case-insensitive), or one zone's canonical name; undefined for
 * nothing known. `rest` is the path after `/api/timezone`, without `.txt`.
 */
export function resolveTimezonePath(
  rest: string,
): { list: readonly string[] } | { zone: string } | undefined {
  if (rest === "" || rest === "/") return { list: zoneNames() };
  const name = rest.slice(1);
  // Only what a zone name can hold is looked up (no echo, no traversal).
  if (!/^[A-Za-z0-9_+\-]+(\/[A-Za-z0-9_+\-]+){0,2}$/.test(name)) {
    return undefined;
  }
  const zone = canonicalName(name);
  if (zone !== undefined) return { zone };
  if (name.includes("/")) return undefined;
  const prefix = name.toLowerCase() + "/";
  const list = zoneNames().filter((z) => z.toLowerCase().startsWith(prefix));
  return list.length > 0 ? { list } : undefined;
}

/** How a caller's zone was decided, added to `/api/ip`'s answers. */
export type ZoneBasis = "country" | "city" | "guess";

/**
 * The zone of a country at `epochMs`: its only zone, or the most populous
 * of several. `exact` is true when every zone of the country answers the
 * same time fields now (Germany's Berlin and Zurich share their rules), so
 * the answer cannot be wrong; false marks a best guess. Unknown country:
 * `Etc/UTC`, a guess.
 */
export function countryZone(
  country: string | undefined,
  epochMs: number,
): { zone: string; exact: boolean } {
  const zones = country === undefined ? [] : countryZones(country);
  if (zones.length === 0) return { zone: "Etc/UTC", exact: false };
  const key = (z: string) => {
    const { timezone: _, ...rest } = worldTime(z, epochMs, "");
    return JSON.stringify(rest);
  };
  const first = key(zones[0]);
  return { zone: zones[0], exact: zones.every((z) => key(z) === first) };
}
