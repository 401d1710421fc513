/**
 * The worldtimeapi-compatible routes (`/api/timezone…`, `/api/ip…`) and the
 * caller's zone for `/time?tz=auto`; app.ts registers them.
 *
 * @module
 */
import { json, problem, type RequestContext, text } from "./answer.ts";
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

/** What the handlers read of a request's context (Hono's `Context` fits). */
export interface WorldTimeContext extends RequestContext {
  /** The request, with its path. */
  req: RequestContext["req"] & {
    /** The path, not decoded. */
    path: string;
  };
}

/** A route's handler. */
export type WorldTimeRoute = (c: WorldTimeContext) => Response;

/** A prefix's middleware; `next` passes the request on (app.ts's 404…). */
export type WorldTimeMiddleware = (
  c: WorldTimeContext,
  next: () => Promise<void>,
) => Promise<Response | void>;

/** What the routes need: the clock, the caller's address, the lookups. */
export interface WorldTimeDeps {
  /** The clock the answers read. */
  clock: PreciseClock;
  /** The caller's address. */
  clientIp: (c: RequestContext) => string;
  /** An address's country. */
  country: Lookup;
  /** An address's zone from the operator's city database, if any. */
  cityZone?: Lookup;
}

/**
 * The fixed paths, registered as routes (app.ts's ROUTES); the templated
 * ones under `/api/timezone/` and `/api/ip/` are answered by one handler
 * each, for any depth the path has.
 */
export const WORLDTIME_ROUTES: readonly string[] = [
  "/api/timezone",
  "/api/timezone.txt",
  "/api/ip",
  "/api/ip.txt",
];

/** Whether a request path is one of the worldtimeapi routes' paths. */
export function isWorldTimePath(path: string): boolean {
  return WORLDTIME_ROUTES.includes(path) ||
    path.startsWith("/api/timezone/") || path.startsWith("/api/ip/");
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

function listAnswer(c: RequestContext, list: readonly string[], txt: boolean) {
  return txt ? text(c, list.join("\n")) : json(c, JSON.stringify(list));
}

function timeAnswer(c: RequestContext, fields: object, txt: boolean) {
  return txt ? text(c, worldTimeText(fields)) : json(c, JSON.stringify(fields));
}

/**
 * The handlers: `routes` for the fixed paths (GET), `prefixes` for the
 * templated ones under `/api/timezone/` and `/api/ip/`, as middleware that
 * answers GET and HEAD and passes anything else on (app.ts's preflight,
 * 405 or 404); app.ts's list of GET routes stays the concrete paths.
 */
export function worldTimeHandlers(deps: WorldTimeDeps): {
  routes: [string, WorldTimeRoute][];
  prefixes: [string, WorldTimeMiddleware][];
} {
  const timezone: WorldTimeRoute = (c) => {
    const t = deps.clock();
    const [rest, txt] = splitTxt(c.req.path, "/api/timezone");
    const found = resolveTimezonePath(rest);
    if (found === undefined) return problem(c, 404, UNKNOWN_LOCATION);
    if ("list" in found) return listAnswer(c, found.list, txt);
    return timeAnswer(c, worldTime(found.zone, t, deps.clientIp(c)), txt);
  };
  const ip: WorldTimeRoute = (c) => {
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
  const under =
    (prefix: string, handler: WorldTimeRoute): WorldTimeMiddleware =>
    async (
      c,
      next,
    ) => {
      const { method, path } = c.req;
      if ((method === "GET" || method === "HEAD") && path.startsWith(prefix)) {
        return handler(c);
      }
      await next();
    };
  return {
    routes: WORLDTIME_ROUTES.map((
      p,
    ) => [p, p.startsWith("/api/ip") ? ip : timezone]),
    prefixes: [
      ["/api/timezone/", under("/api/timezone/", timezone)],
      ["/api/ip/", under("/api/ip/", ip)],
    ],
  };
}
