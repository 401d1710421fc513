/**
 * Where an address is: its country from the embedded database (CC0,
 * `@ip-location-db/geo-whois-asn-country-mmdb`, read with `mmdb-lib`), and
 * with an operator's MaxMind-format city database its time zone.
 * docs/geo.md says how to update the database.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Reader } from "mmdb-lib";
import { isTrusted, parseAddress, parseRange } from "./client_ip.ts";
import { ConfigError } from "./config.ts";

/** The embedded database's package and version (deno.json pins it). */
export const COUNTRY_DB = {
  name: "@ip-location-db/geo-whois-asn-country-mmdb",
  version: "2.3.2026061719",
  licence: "CC0-1.0 (its data: CC BY 4.0, by the NRO, nro.net)",
} as const;

/** A lookup of one address's country or zone; undefined when unknown. */
export type Lookup = (address: string) => string | undefined;

// mmdb-lib wants a Node Buffer (this one shares the bytes, no copy). Its
// decoder cache keeps each record once: the database has a few hundred,
// shared by a million networks, so lookups stop allocating.
function readerOf<T>(bytes: Uint8Array): Reader<T & Record<string, unknown>> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records = new Map<number, unknown>();
  const cache = {
    get: (key: number) => records.get(key),
    set: (key: number, value: unknown) => void records.set(key, value),
  };
  return new Reader(
    buffer,
    { cache } as ConstructorParameters<typeof Reader>[1],
  );
}

/**
 * Addresses that are no one's country (IANA's special-purpose registries,
 * RFC 6890): this, private, CGNAT, loopback, link-local, documentation,
 * benchmarking, multicast and reserved space. The embedded database has
 * records for some (192.168.1.1 is in it), so they are refused first; a
 * prefix match costs far less than ipaddr.js's range() (40 µs).
 */
export const NO_COUNTRY: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/3",
  "::/127",
  "100::/64",
  "2001:2::/48",
  "2001:db8::/32",
  "fc00::/7",
  "fe80::/10",
  "ff00::/8",
];
const SPECIAL = NO_COUNTRY.map(parseRange);

// Addresses come normalised (client_ip.ts); anything else has no record.
function recordOf<T>(
  reader: Reader<T & Record<string, unknown>>,
  address: string,
): T | null {
  const parsed = parseAddress(address);
  if (parsed === undefined || isTrusted(parsed, SPECIAL)) return null;
  try {
    return reader.get(address);
  } catch {
    return null;
  }
}

/**
 * A country lookup over an MMDB whose records hold `country_code` (the
 * embedded database's schema) or MaxMind's `country.iso_code`, for an
 * address as client_ip.ts normalises it; unknown addresses have none.
 */
export function countryLookup(bytes: Uint8Array): Lookup {
  const reader = readerOf<{
    country_code?: string;
    country?: { iso_code?: string };
  }>(bytes);
  return (address) => {
    const record = recordOf(reader, address);
    const code = record?.country_code ?? record?.country?.iso_code;
    return typeof code === "string" && /^[A-Z]{2}$/.test(code)
      ? code
      : undefined;
  };
}

/**
 * A zone lookup over a MaxMind-format city database (`location.time_zone`),
 * as an operator sets with `GEOIP_CITY_DB`.
 */
export function cityZoneLookup(bytes: Uint8Array): Lookup {
  const reader = readerOf<{ location?: { time_zone?: string } }>(bytes);
  return (address) => {
    const zone = recordOf(reader, address)?.location?.time_zone;
    return typeof zone === "string" ? zone : undefined;
  };
}

/**
 * The zone lookup of the city database at `path` (GEOIP_CITY_DB), read once
 * at start; undefined without one. A file that cannot be read or is not a
 * MaxMind DB is a {@linkcode ConfigError} naming the setting, not the file's
 * bytes.
 */
export async function loadCityZone(
  path: string | undefined,
): Promise<Lookup | undefined> {
  if (path === undefined) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new ConfigError(
      `Invalid GEOIP_CITY_DB ${JSON.stringify(path)}: cannot read it (${
        (err as Error).name
      })`,
    );
  }
  try {
    return cityZoneLookup(bytes);
  } catch {
    throw new ConfigError(
      `Invalid GEOIP_CITY_DB ${JSON.stringify(path)}: not a MaxMind DB file`,
    );
  }
}
