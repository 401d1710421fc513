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
import { parseRange } from "./client_ip.ts";
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

/** An address as the units of its family: 4 octets or 8 16-bit words. */
export type Units = number[];

// Each range as units and prefix length, matched against an address's.
const SPECIAL: [Units, number][] = NO_COUNTRY.map((text) => {
  const [base, bits] = parseRange(text);
  const units = "octets" in base ? base.octets : base.parts;
  return [units, bits];
});

/**
 * The units of an address as client_ip.ts normalises it (dotted quad, RFC
 * 5952 IPv6), split by hand: ipaddr.js parses an IPv6 address in ~20 µs on
 * the reference machine, more than the rest of a lookup ten times over.
 */
export function unitsOf(address: string): Units | undefined {
  if (!address.includes(":")) {
    const octets = address.split(".").map(Number);
    return octets.length === 4 && octets.every((o) => o >= 0 && o <= 255)
      ? octets
      : undefined;
  }
  if (address.includes(".")) return undefined;
  const [head, tail] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const words = [...left, ...Array(fill).fill("0"), ...right].map((w) =>
    /^[0-9a-f]{1,4}$/.test(w) ? parseInt(w, 16) : NaN
  );
  return words.length === 8 && words.every((w) => w >= 0) ? words : undefined;
}

/** Whether an address's units lie in one of the {@linkcode NO_COUNTRY} ranges. */
export function isSpecial(units: Units): boolean {
  const width = units.length === 4 ? 8 : 16;
  return SPECIAL.some(([base, bits]) => {
    if (base.length !== units.length) return false;
    for (let i = 0, left = bits; left > 0; i++, left -= width) {
      const mask = left >= width
        ? 0
        : (2 ** width - 1) ^ (2 ** (width - left) - 1);
      const differ = mask === 0
        ? base[i] !== units[i]
        : (base[i] & mask) !== (units[i] & mask);
      if (differ) return false;
    }
    return true;
  });
}

// Addresses come normalised (client_ip.ts); anything else has no record.
function recordOf<T>(
  reader: Reader<T & Record<string, unknown>>,
  address: string,
): T | null {
  const units = unitsOf(address);
  if (units === undefined || isSpecial(units)) return null;
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
