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
import { type Address, parseAddress } from "./client_ip.ts";

/** The embedded database's package and version (deno.json pins it). */
export const COUNTRY_DB = {
  name: "@ip-location-db/geo-whois-asn-country-mmdb",
  version: "2.3.2026061719",
  licence: "CC0-1.0 (its data: CC BY 4.0, by the NRO, nro.net)",
} as const;

/** A lookup of one address's country or zone; undefined when unknown. */
export type Lookup = (address: string) => string | undefined;

// Ranges that are no one's country: private, loopback, link-local, CGNAT,
// documentation, multicast and the like (ipaddr.js names them).
function isPublic(address: Address): boolean {
  return address.range() === "unicast";
}

function readerOf<T>(bytes: Uint8Array): Reader<T & Record<string, unknown>> {
  // mmdb-lib wants a Node Buffer; this one shares the bytes, no copy.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new Reader(buffer);
}

/**
 * A country lookup over an MMDB whose records hold `country_code` (the
 * embedded database's schema) or MaxMind's `country.iso_code`. Private,
 * loopback, reserved and unknown addresses have none.
 */
export function countryLookup(bytes: Uint8Array): Lookup {
  const reader = readerOf<{
    country_code?: string;
    country?: { iso_code?: string };
  }>(bytes);
  return (text) => {
    const address = parseAddress(text);
    if (address === undefined || !isPublic(address)) return undefined;
    const record = reader.get(address.toString());
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
  return (text) => {
    const address = parseAddress(text);
    if (address === undefined || !isPublic(address)) return undefined;
    const zone = reader.get(address.toString())?.location?.time_zone;
    return typeof zone === "string" ? zone : undefined;
  };
}
