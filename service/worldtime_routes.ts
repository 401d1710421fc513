/**
 * The worldtimeapi-compatible routes (`/api/timezone…`, `/api/ip…`) and the
 * caller's zone for `/time?tz=auto`; app.ts registers them.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { json, problem, text } from "./answer.ts";
import { normalizeAddress } from "./client_ip.ts";
import type { Lookup } from "./geo.ts";
import type { PreciseClock } from "./time.ts";
import { canonicalName } from "./tz_names.ts";
import {
  countryZone,
  resolveTimezonePath,
  UNKNOWN_LOCATION,
  worldTime,
  worldTimeText,
  type ZoneBasis,
} from "./worldtime.ts";

/** What the routes need: the clock, the caller's address, the lookups. */
export interface WorldTimeDeps {
  /** The clock the answers read. */
  clock: PreciseClock;
  /** The caller's address. */
  clientIp: (c: Context) => string;
  /** An address's country. */
  country: Lookup;
  /** An address's zone from the operator's city database, if any. */
  cityZone?: Lookup;
}

/** The path patterns registered, for app.ts's 405s and preflights. */
export const WORLDTIME_PATHS: readonly string[] = [
  "/api/timezone",
  "/api/timezone.txt",
  "/api/timezone/*",
  "/api/ip",
  "/api/ip.txt",
  "/api/ip/*",
];

/** Whether a request path is one of the worldtimeapi routes' paths. */
export function isWorldTimePath(path: string): boolean {
  return path === "/api/timezone" || path === "/api/timezone.txt" ||
    path.startsWith("/api/timezone/") || path === "/api/ip" ||
    path === "/api/ip.txt" || path.startsWith("/api/ip/");
}

/**
 * The zone of an address: the operator's city database's when it names a
 * zone the runtime knows, else its country's ({@linkcode countryZone}).
 */
export function callerZone(
  deps: WorldTimeDeps,
  address: string,
  epochMs: number,
): { zone: string; basis: ZoneBasis } {
  const city = deps.cityZone?.(address);
  const cityCanonical = city === undefined ? undefined : canonicalName(city);
  if (cityCanonical !== undefined) {
    return { zone: cityCanonical, basis: "city" };
  }
  const { zone, exact } = countryZone(deps.country(address), epochMs);
  return { zone, basis: exact ? "country" : "guess" };
}

// `.txt` ends a path for the text form; the rest names what is asked.
function splitTxt(path: string, base: string): [string, boolean] {
  const txt = path.endsWith(".txt");
  return [path.slice(base.length, txt ? -4 : undefined), txt];
}

function listAnswer(c: Context, list: readonly string[], txt: boolean) {
  return txt ? text(c, list.join("\n")) : json(c, JSON.stringify(list));
}

function timeAnswer(c: Context, fields: object, txt: boolean) {
  return txt ? text(c, worldTimeText(fields)) : json(c, JSON.stringify(fields));
}

/** Registers the routes on `app`. */
export function registerWorldTime(app: Hono, deps: WorldTimeDeps): void {
  const timezone = (c: Context) => {
    const t = deps.clock();
    const [rest, txt] = splitTxt(c.req.path, "/api/timezone");
    const found = resolveTimezonePath(rest);
    if (found === undefined) return problem(c, 404, UNKNOWN_LOCATION);
    if ("list" in found) return listAnswer(c, found.list, txt);
    return timeAnswer(c, worldTime(found.zone, t, deps.clientIp(c)), txt);
  };
  const ip = (c: Context) => {
    const t = deps.clock();
    const [rest, txt] = splitTxt(c.req.path, "/api/ip");
    const client = deps.clientIp(c);
    const address = rest === "" ? client : normalizeAddress(rest.slice(1));
    if (address === undefined) {
      return problem(
        c,
        400,
        "Invalid address: expected an IPv4 or IPv6 literal",
      );
    }
    const { zone, basis } = callerZone(deps, address, t);
    const fields = { ...worldTime(zone, t, client), timezone_basis: basis };
    return timeAnswer(c, fields, txt);
  };
  for (const path of WORLDTIME_PATHS) {
    app.get(path, path.startsWith("/api/ip") ? ip : timezone);
  }
}
