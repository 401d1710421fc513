/**
 * The HTTP API: one Hono app, its routes and the headers every answer
 * carries. `main.ts` serves it; tests call it in-process with `app.request()`.
 *
 * @module
 */
import { Hono } from "hono";
import { accepts } from "hono/accepts";
import type { Context } from "hono";
import type { ForwardedHeader } from "./config.ts";
import {
  type AddressRange,
  formatAddress,
  normalizeAddress,
  parseAddress,
  resolveClient,
  splitForwarded,
  splitForwardedFor,
} from "./client_ip.ts";
import { COMMON_HEADERS } from "./common_headers.ts";
import type { Logger } from "./log.ts";
import { openApiDocument } from "./openapi.ts";
import { renderPage } from "./page.ts";
import { STATIC_FILES } from "./static_files.ts";

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
}

/** What the app needs to know about its deployment. */
export interface AppOptions {
  /** Proxies whose forwarding headers are believed (TCP peers only). */
  trustedProxies: AddressRange[];
  /** The header those proxies write. */
  forwardedHeader: ForwardedHeader;
  /** Where request failures are logged. */
  logger: Logger;
  /** The service's version, shown by the page and OpenAPI. */
  version: string;
}

/** The paths the API answers (GET, HEAD and OPTIONS each). */
export const ROUTES = ["/", "/ip", "/timestamp", "/healthz", "/openapi.json"];

/** Request ids taken from the caller must match this (nginx uses the same). */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";
const ALLOW = "GET, HEAD, OPTIONS";

/**
 * Formats an instant as UTC ISO 8601 with exactly three fractional digits
 * and a `+00:00` offset, e.g. `2025-12-12T12:34:56.789+00:00`.
 */
export function formatTimestamp(date: Date): string {
  const iso = date.toISOString();
  return iso.slice(0, -1) + "+00:00";
}

// Under load many requests share a millisecond: format it once.
let lastMs = -1;
let lastText = "";
function now(): { ms: number; text: string } {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastText = formatTimestamp(new Date(ms));
    lastMs = ms;
  }
  return { ms, text: lastText };
}

function requestIdOf(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given !== null && REQUEST_ID_PATTERN.test(given)
    ? given
    : crypto.randomUUID();
}

// A worker's Unix socket is reached only by the stack's nginx, which
// overwrites X-Real-IP and adds the common headers and X-Request-Id to every
// answer: each header a worker sets costs it ~2 µs of CPU per request.
function behindStackNginx(c: Context): boolean {
  const info = c.env as Deno.ServeHandlerInfo | undefined;
  return info?.remoteAddr?.transport === "unix";
}

// The headers are set here, where each answer is made: a middleware that
// adds them after `await next()` costs far more per request.
function reply(
  c: Context,
  body: string | Uint8Array<ArrayBuffer> | null,
  status: number,
  type: string | null,
  requestId: string,
  extra?: Record<string, string>,
): Response {
  const headers: Record<string, string> = behindStackNginx(c)
    ? {}
    : { ...COMMON_HEADERS, "x-request-id": requestId };
  if (type !== null) headers["content-type"] = type;
  if (extra) Object.assign(headers, extra);
  return new Response(body, { status, headers });
}

function error(
  c: Context,
  status: number,
  message: string,
  requestId: string,
  extra?: Record<string, string>,
): Response {
  return reply(
    c,
    JSON.stringify({ error: message }) + "\n",
    status,
    JSON_TYPE,
    requestId,
    extra,
  );
}

/** An answer that could not be given; its message is safe to show. */
class ClientError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Format = "json" | "text" | "html";

// `?format=` wins over `Accept`; `Accept` is read only when it could matter.
function formatOf(c: Context, offered: Format[], fallback: Format): Format {
  const forced = c.req.url.includes("?") ? c.req.query("format") : undefined;
  if (forced !== undefined) {
    if ((offered as string[]).includes(forced)) return forced as Format;
    throw new ClientError(
      400,
      `Unsupported format ${JSON.stringify(forced)}: expected ${
        offered.join(" or ")
      }`,
    );
  }
  const accept = c.req.header("accept");
  if (!accept) return fallback;
  const types = { json: JSON_TYPE, text: "text/plain", html: "text/html" };
  const chosen = accepts(c, {
    header: "Accept",
    supports: offered.map((f) => types[f]),
    default: types[fallback],
  });
  return offered.find((f) => types[f] === chosen) ?? fallback;
}

/** Builds the app. */
export function createApp(options: AppOptions): App {
  const { logger, trustedProxies, forwardedHeader } = options;
  const split = forwardedHeader === "forwarded"
    ? splitForwarded
    : splitForwardedFor;
  const openApi = JSON.stringify(openApiDocument(options.version));
  const vary = { vary: "Accept" };

  // The same few addresses arrive again and again; parsing is the costly
  // part, so results of the pure parse are kept (bounded).
  const normalized = new Map<string, string | null>();
  function normalize(text: string): string | undefined {
    let hit = normalized.get(text);
    if (hit === undefined) {
      hit = normalizeAddress(text) ?? null;
      if (normalized.size >= 4096) normalized.clear();
      normalized.set(text, hit);
    }
    return hit ?? undefined;
  }

  function clientIp(c: Context, requestId: string): string {
    if (behindStackNginx(c)) {
      const given = c.req.header("x-real-ip");
      const address = given === undefined ? undefined : normalize(given);
      if (address === undefined) {
        logger.error("proxy sent no valid X-Real-IP", {
          request_id: requestId,
          present: given !== undefined,
        });
        throw new ClientError(
          400,
          "The proxy did not supply a valid client address",
        );
      }
      return address;
    }
    const remote = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    const hostname = remote?.transport === "tcp" ? remote.hostname : undefined;
    if (trustedProxies.length === 0 && hostname !== undefined) {
      const address = normalize(hostname);
      if (address !== undefined) return address;
    }
    const peer = hostname === undefined ? undefined : parseAddress(hostname);
    if (!peer) throw new Error("Connection has no peer address");
    const header = c.req.header(forwardedHeader);
    const hops = header === undefined ? [] : split(header);
    return formatAddress(resolveClient(peer, hops, trustedProxies));
  }

  const app = new Hono();

  if (logger.enabled("debug")) {
    app.use(async (c, next) => {
      const start = performance.now();
      await next();
      logger.debug("request", {
        request_id: c.res.headers.get("x-request-id") ??
          c.req.header("x-request-id"),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - start) * 1000) / 1000,
      });
    });
  }

  app.get("/", (c) => {
    const id = requestIdOf(c.req.raw);
    const format = formatOf(c, ["json", "html"], "json");
    const ip = clientIp(c, id);
    const timestamp = now().text;
    if (format === "html") {
      return reply(
        c,
        renderPage({ ip, timestamp, version: options.version }),
        200,
        HTML_TYPE,
        id,
        { ...vary, "content-security-policy": PAGE_CSP },
      );
    }
    return reply(
      c,
      JSON.stringify({ timestamp, ip }),
      200,
      JSON_TYPE,
      id,
      vary,
    );
  });

  app.get("/ip", (c) => {
    const id = requestIdOf(c.req.raw);
    const format = formatOf(c, ["text", "json"], "text");
    const ip = clientIp(c, id);
    return format === "json"
      ? reply(c, JSON.stringify({ ip }), 200, JSON_TYPE, id, vary)
      : reply(c, ip + "\n", 200, TEXT_TYPE, id, vary);
  });

  app.get("/timestamp", (c) => {
    const id = requestIdOf(c.req.raw);
    const format = formatOf(c, ["text", "json"], "text");
    const { ms, text: timestamp } = now();
    return format === "json"
      ? reply(
        c,
        JSON.stringify({ timestamp, unix_ms: ms }),
        200,
        JSON_TYPE,
        id,
        vary,
      )
      : reply(c, timestamp + "\n", 200, TEXT_TYPE, id, vary);
  });

  app.get(
    "/healthz",
    (c) => reply(c, '{"status":"ok"}', 200, JSON_TYPE, requestIdOf(c.req.raw)),
  );

  app.get(
    "/openapi.json",
    (c) => reply(c, openApi, 200, JSON_TYPE, requestIdOf(c.req.raw)),
  );

  // Static files: nginx serves them in the stack; this covers `deno task dev`.
  for (const [path, file] of STATIC_FILES) {
    app.get(
      path,
      (c) =>
        reply(c, file.body, 200, file.type, requestIdOf(c.req.raw), {
          "cache-control": file.cacheControl,
        }),
    );
  }

  // No catch-all routes: with one handler per match Hono skips composing a
  // chain. What matches nothing is a preflight, a 405 or a 404.
  app.notFound((c) => {
    const id = requestIdOf(c.req.raw);
    if (!isKnownPath(c.req.path)) return error(c, 404, "Not found", id);
    if (c.req.method === "OPTIONS") {
      return reply(c, null, 204, null, id, {
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": "*",
        "access-control-max-age": "86400",
      });
    }
    return error(c, 405, `Method ${c.req.method} not allowed`, id, {
      allow: ALLOW,
    });
  });

  app.onError((err, c) => {
    const id = requestIdOf(c.req.raw);
    if (err instanceof ClientError) {
      return error(c, err.status, err.message, id);
    }
    logger.error("request failed", {
      request_id: id,
      method: c.req.method,
      path: c.req.path,
      error: String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
    return error(c, 500, "Internal server error", id);
  });

  return app;
}

function isKnownPath(path: string): boolean {
  return ROUTES.includes(path) || STATIC_FILES.has(path);
}

/** The page's policy: its own script and style only, nothing inline. */
export const PAGE_CSP: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
