/**
 * The HTTP API: one Hono app and its routes. `main.ts` serves it; tests call
 * it in-process with `app.request()`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  behindStackNginx,
  html,
  json,
  noContent,
  problem,
  requestIdOf,
  send,
  staticFile,
  text,
} from "./answer.ts";
import { clientAddressReader } from "./client_address.ts";
import { type ClockState, clockWithin, UNKNOWN_CLOCK } from "./clock.ts";
import { ALLOW, PREFLIGHT_HEADERS } from "./common_headers.ts";
import { addressFamily, type AddressRange } from "./client_ip.ts";
import type { FamilyOrigins, ForwardedHeader } from "./config.ts";
import type { Logger } from "./log.ts";
import { negotiate } from "./negotiate.ts";
import { refusalOf } from "./request_rules.ts";
import { openApiDocument } from "./openapi.ts";
import { pageCsp, renderPage } from "./page.ts";
import { STATIC_FILES } from "./static_files.ts";
import {
  parseTimeQuery,
  type PreciseClock,
  preciseNow,
  timeFields,
  type TimeQuery,
  TimeQueryError,
} from "./time.ts";
import { formatTimestamp, now } from "./timestamp.ts";
import type { Lookup } from "./geo.ts";
import { embeddedCountry } from "./geo_db.ts";
import {
  callerZone,
  isWorldTimePath,
  WORLDTIME_ROUTES,
  type WorldTimeDeps,
  worldTimeHandlers,
} from "./worldtime_routes.ts";

/**
 * What callers use of the Hono app: its fetch handler and in-process
 * requests (Hono's `app.request`, as the tests make them).
 */
export interface App {
  /** The handler for `Deno.serve`. */
  fetch(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Response | Promise<Response>;
  /** Answers one request in-process, with `env` as the handler info. */
  request(
    input: string | URL | Request,
    init?: RequestInit,
    env?: unknown,
  ): Response | Promise<Response>;
  /** The routes it has, middleware included (method `ALL`). */
  readonly routes: readonly { method: string; path: string }[];
}

/** What the app needs to know about its deployment. */
export interface AppOptions {
  /** Proxies whose forwarding headers are believed (TCP peers only). */
  trustedProxies: AddressRange[];
  /** The header those proxies write. */
  forwardedHeader: ForwardedHeader;
  /** Where request failures are logged. */
  logger: Logger;
  /** The service's version, shown by OpenAPI. */
  version: string;
  /** Hosts reached over one address family only, shown on the page. */
  origins?: FamilyOrigins;
  /** The clock `/time` reads (tests fake it). */
  clock?: PreciseClock;
  /** That clock's state, read per `/time` answer (default: unknown). */
  clockState?: () => ClockState;
  /** CLOCK_MAX_ERROR_MS: `/healthz` is a 503 while the clock is worse. */
  clockMaxErrorMs?: number;
  /** An address's country (default: the embedded database). */
  country?: Lookup;
  /** An address's zone from the operator's city database (GEOIP_CITY_DB). */
  cityZone?: Lookup;
}

/** The API's paths besides the static files (GET, HEAD and OPTIONS each). */
export const ROUTES = [
  "/",
  "/ip",
  "/timestamp",
  "/time",
  "/healthz",
  "/livez",
  "/openapi.json",
  ...WORLDTIME_ROUTES,
];

const VARY = { vary: "Accept" };
const FORMATS = {
  json: "application/json",
  text: "text/plain",
  html: "text/html",
} as const;
type Format = keyof typeof FORMATS;

/**
 * The format of the answer: `?format=` wins over `Accept`, and the first
 * offer is the default.
 */
function formatOf(c: Context, offered: Format[]): Format {
  const forced = c.req.url.includes("?") ? c.req.query("format") : undefined;
  if (forced !== undefined) {
    if ((offered as string[]).includes(forced)) return forced as Format;
    // Never echo what the client sent: name what is accepted instead.
    throw new HTTPException(400, {
      message: `Unsupported format: expected ${offered.join(" or ")}`,
    });
  }
  const type = negotiate(
    c.req.header("accept"),
    offered.map((f) => FORMATS[f]),
  );
  return offered.find((f) => FORMATS[f] === type)!;
}

/** Builds the app. */
export function createApp(options: AppOptions): App {
  const clientIp = clientAddressReader(options);
  const openApi = JSON.stringify(openApiDocument(options.version));
  const origins = options.origins ?? {};
  const csp = pageCsp(origins);
  const clock = options.clock ?? preciseNow;
  const clockState = options.clockState ?? (() => UNKNOWN_CLOCK);
  const geo: WorldTimeDeps = {
    clock,
    clientIp,
    country: options.country ?? embeddedCountry,
    cityZone: options.cityZone,
  };
  const app = new Hono();
  if (options.logger.enabled("debug")) app.use(requestLog(options.logger));
  app.use(rejectMalformed);

  app.get("/", (c) => {
    const format = formatOf(c, ["json", "html"]);
    const ip = clientIp(c);
    const timestamp = now().text;
    if (format === "json") {
      return json(c, JSON.stringify({ timestamp, ip }), VARY);
    }
    const country = geo.country(ip);
    const clock = clockState();
    const page = renderPage({ ip, timestamp, origins, country, clock });
    return html(c, page, { ...VARY, "content-security-policy": csp });
  });

  app.get("/ip", (c) => {
    const format = formatOf(c, ["text", "json"]);
    const ip = clientIp(c);
    if (format === "text") return text(c, ip, VARY);
    const country = geo.country(ip);
    const body = { ip, family: addressFamily(ip), ...country && { country } };
    return json(c, JSON.stringify(body), VARY);
  });

  app.get("/timestamp", (c) => {
    const format = formatOf(c, ["text", "json"]);
    const { ms, text: timestamp } = now();
    return format === "json"
      ? json(c, JSON.stringify({ timestamp, unix_ms: ms }), VARY)
      : text(c, timestamp, VARY);
  });

  app.get("/time", (c) => {
    const t1 = clock();
    const state = clockState();
    const [query, basis] = timeQuery(c, geo, t1);
    const fields = timeFields(query, t1, utc, clock);
    if (basis) fields.tz_basis = basis;
    fields.clock = state;
    return json(c, JSON.stringify(fields));
  });

  const worldTime = worldTimeHandlers(geo);
  for (const [path, handler] of worldTime.routes) app.get(path, handler);
  for (const [prefix, handler] of worldTime.prefixes) {
    app.use(`${prefix}*`, handler);
  }
  app.get("/healthz", (c) => health(c, clockState, options.clockMaxErrorMs));
  app.get("/livez", (c) => json(c, '{"status":"ok"}'));
  app.get("/openapi.json", (c) => json(c, openApi));

  // Static files: nginx serves them in the stack; this covers `deno task dev`.
  for (const [path, file] of STATIC_FILES) {
    app.get(path, (c) => staticFile(c, file));
  }

  // No catch-all routes: with one handler per match Hono skips composing a
  // chain. What matches nothing is a preflight, a 405 or a 404.
  const paths = new Set(
    app.routes.filter((r) => r.method === "GET").map((r) => r.path),
  );
  app.notFound((c) => unmatched(c, paths));
  app.onError((err, c) => failed(err, c, options.logger));
  return app;
}

const utc = (ms: number) => formatTimestamp(new Date(ms));

// Readiness: a load balancer drains a server whose clock nothing vouches
// for within the operator's bound. Liveness (`/livez`) never asks: a
// restart cannot fix the node's clock.
function health(
  c: Context,
  clockState: () => ClockState,
  limit: number | undefined,
): Response {
  if (limit === undefined) return json(c, '{"status":"ok"}');
  const state = clockState();
  if (clockWithin(state, limit)) return json(c, '{"status":"ok"}');
  const body = {
    status: "clock unsynchronised",
    synchronized: state.synchronized,
    max_error_ms: state.max_error_ms,
    limit_ms: limit,
  };
  return send(c, 503, "application/json", JSON.stringify(body));
}

// The query's messages are fixed text, safe to send. `tz=auto` is the
// caller's zone (worldtime_routes.ts), with how it was decided.
function timeQuery(
  c: Context,
  geo: WorldTimeDeps,
  t1: number,
): [TimeQuery, string?] {
  const url = c.req.url;
  if (!url.includes("?")) return [{}];
  try {
    const params = new URL(url).searchParams;
    if (params.get("tz") !== "auto") return [parseTimeQuery(params)];
    const { zone, basis } = callerZone(geo, geo.clientIp(c), t1);
    params.set("tz", zone);
    return [parseTimeQuery(params), basis];
  } catch (err) {
    if (!(err instanceof TimeQueryError)) throw err;
    throw new HTTPException(400, { message: err.message });
  }
}

// Deno.serve gives the request target `*` of `OPTIONS *` as the path `/*`.
function unmatched(c: Context, paths: Set<string>): Response {
  const { method, path } = c.req;
  if (method === "OPTIONS" && path === "/*") {
    return noContent(c, { allow: ALLOW });
  }
  if (!paths.has(path) && !isWorldTimePath(path)) {
    return problem(c, 404, "Not found");
  }
  if (method === "OPTIONS") {
    return noContent(c, { allow: ALLOW, ...PREFLIGHT_HEADERS });
  }
  return problem(c, 405, "Method not allowed", { allow: ALLOW });
}

function failed(err: Error, c: Context, logger: Logger): Response {
  if (err instanceof HTTPException) {
    return problem(c, err.status, err.message);
  }
  logger.error("request failed", {
    request_id: requestIdOf(c),
    method: c.req.method,
    path: c.req.path,
    error: String(err),
    stack: err.stack,
  });
  return problem(c, 500, "Internal server error");
}

// A `%` not followed by two hex digits, or an encoded NUL: not a URI path.
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})|%00/;

/**
 * What nginx refuses in the stack, the service refuses alone: a Host that
 * is not a host (RFC 9112 §3.2), a body (the API reads none, so the answer
 * does not wait for it; hyper then closes the connection), an oversized
 * Accept (request_rules.ts), and a target that is not a URI (RFC 3986).
 * What came through the stack's nginx (behindStackNginx, the one place
 * that decides it) was refused there already.
 */
const rejectMalformed: MiddlewareHandler = async (c, next) => {
  if (behindStackNginx(c)) return await next();
  const refusal = refusalOf(c.req.raw.headers);
  if (refusal) return problem(c, refusal.status, refusal.message);
  // The path only: like nginx, leave the query to whoever reads it.
  const url = c.req.url;
  const query = url.indexOf("?");
  const path = url.slice(url.indexOf("/", 8), query < 0 ? undefined : query);
  if (BAD_ESCAPE.test(path)) return problem(c, 400, "Invalid request target");
  await next();
};

function requestLog(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const start = performance.now();
    await next();
    logger.debug("request", {
      request_id: requestIdOf(c),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - start) * 1000) / 1000,
    });
  };
}
