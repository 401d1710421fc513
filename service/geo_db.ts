/**
 * The embedded country database (`@ip-location-db/geo-whois-asn-country-mmdb`,
 * both families in one file, 7.8 MB), part of the module graph like the
 * static files: no file access at run time, and `deno compile` carries it.
 *
 * @module
 */
import db from "@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb" with {
  type: "bytes",
};
import { countryLookup, type Lookup } from "./geo.ts";

/** The country of an address from the embedded database. */
export const embeddedCountry: Lookup = countryLookup(db);
