/**
 * The OpenAPI 3.1 description of what the service sends, served at
 * `/openapi.json`: every path with its GET, HEAD and OPTIONS, every status
 * each can answer in either mode (the service alone or the stack behind
 * nginx), and, in `x-unlisted-requests`, the 404 and 405 that any other
 * path or method gets. tests/openapi_test.ts holds it to the real answers.
 *
 * Every operation, whoever adds its path, gets from {@linkcode openApiDocument}
 * what client generators and linters need (`withConventions`): an
 * `operationId` made from its method and path ({@linkcode operationId}),
 * a tag (its path's group, or the path's first segment after `/api`), and
 * a summary and description when it has none.
 *
 * @module
 */
import { REQUEST_ID_PATTERN } from "./answer.ts";
import { ALLOWED_METHODS } from "./common_headers.ts";
import { STATIC_FILES } from "./static_files.ts";
import {
  DATA_SOURCES,
  WORLDTIME_TAG,
  worldTimePaths,
} from "./openapi_worldtime.ts";
import { TZDB_VERSION } from "./tz_names.ts";

type Json = Record<string, unknown>;

const response = (name: string) => ({ $ref: `#/components/responses/${name}` });
const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

// Every answer carries these (common_headers.ts).
const HEADERS = {
  "X-Request-Id": header("X-Request-Id"),
  "Cache-Control": header("Cache-Control"),
};

// Errors any request can get, by status; the descriptions say which mode.
const ERRORS: Json = {
  "400": response("BadRequest"),
  "413": response("ContentTooLarge"),
  "414": response("UriTooLong"),
  "431": response("HeadersTooLarge"),
  "500": response("InternalError"),
  "501": response("NotImplemented"),
  "505": response("VersionNotSupported"),
};
// Errors of the answers a worker makes behind the stack's nginx.
const PROXY_ERRORS: Json = {
  "429": response("TooManyRequests"),
  "502": response("BadGateway"),
  "503": response("Unavailable"),
  "504": response("GatewayTimeout"),
};

const format = (values: string[]) => ({
  name: "format",
  in: "query",
  required: false,
  description: "Forces the answer's format, whatever `Accept` says.",
  schema: { type: "string", enum: values },
});

// HEAD: the statuses and headers of GET, without a body.
function head(get: Json): Json {
  const responses: Json = {};
  for (const status of Object.keys(get.responses as Json)) {
    responses[status] = {
      description: "As GET, without a body; Content-Length is GET's.",
      headers: HEADERS,
    };
  }
  return {
    summary: `${get.summary} (headers only)`,
    description:
      "As GET, without a body: the same status and headers, Content-Length included.",
    responses,
  };
}

// Always answered by the app, so behind nginx a worker's errors too.
const options: Json = {
  summary: "CORS preflight",
  description:
    "The methods this path allows, for any origin; cached for a day.",
  responses: { "204": response("Preflight"), ...ERRORS, ...PROXY_ERRORS },
};

function api(
  tag: string,
  summary: string,
  description: string,
  content: Json,
  parameters: unknown[] = [],
): Json {
  const get = {
    tags: [tag],
    summary,
    description,
    parameters,
    responses: {
      "200": { description: summary, headers: HEADERS, content },
      ...ERRORS,
      ...PROXY_ERRORS,
    },
  };
  return { get, head: head(get), options };
}

// nginx serves these in the stack and answers conditional requests.
function staticFile(type: string): Json {
  const get = {
    tags: ["page"],
    summary: "Static file",
    description:
      "A file of the page, with its own Cache-Control; in the stack nginx " +
      "serves it and answers conditional requests.",
    responses: {
      "200": {
        description: "The file, with its own Cache-Control.",
        headers: HEADERS,
        content: { [type]: { schema: { type: "string" } } },
      },
      "304": {
        description: "Not modified (the stack, on If-None-Match).",
        headers: HEADERS,
      },
      "412": response("PreconditionFailed"),
      ...ERRORS,
    },
  };
  return { get, head: head(get), options };
}

function staticPaths(): Json {
  const paths: Json = {};
  for (const [path, file] of STATIC_FILES) {
    paths[path] = staticFile(file.type.split(";")[0]);
  }
  return paths;
}

function timePath(): Json {
  return api(
    "time",
    "Time, a zone's local time, and an NTP-style exchange",
    "`utc`, `unix` and `unix_ms` always; `tz` adds the zone's fields, " +
      "`t0` the exchange's: a client computes offset = " +
      "((t1 − t0) + (t2 − t3)) / 2 and delay = (t3 − t0) − (t2 − t1). " +
      "An unknown `tz` or a `t0` that is not a finite number is a 400.",
    { "application/json": { schema: timeSchema() } },
    [
      {
        name: "tz",
        in: "query",
        required: false,
        description: "An IANA time zone such as `Europe/Berlin`.",
        schema: { type: "string" },
      },
      {
        name: "t0",
        in: "query",
        required: false,
        description:
          "The client's send time in ms since the epoch (decimals allowed).",
        schema: { type: "number" },
      },
    ],
  );
}

function apiPaths(): Json {
  const timestamp = { $ref: "#/components/schemas/Timestamp" };
  const ip = { $ref: "#/components/schemas/Ip" };
  const object = (properties: Json) => ({
    schema: {
      type: "object",
      required: Object.keys(properties),
      additionalProperties: false,
      properties,
    },
  });
  const line = { schema: { type: "string", pattern: "^[^\\n]+\\n$" } };
  return {
    "/": api(
      "address",
      "Time and address",
      "JSON by default; a browser that prefers `text/html` gets a page.",
      {
        "application/json": object({ timestamp, ip }),
        "text/html": { schema: { type: "string" } },
      },
      [format(["json", "html"])],
    ),
    "/ip": api(
      "address",
      "Address",
      "Plain text with a newline, or JSON when preferred.",
      {
        "text/plain": line,
        "application/json": {
          schema: {
            type: "object",
            required: ["ip", "family"],
            additionalProperties: false,
            properties: {
              ip,
              family: { type: "string", enum: ["ipv4", "ipv6"] },
              country: {
                type: "string",
                pattern: "^[A-Z]{2}$",
                description: "ISO 3166-1 alpha-2, from the embedded " +
                  "database; absent when unknown (private, loopback and " +
                  "documentation addresses have none).",
              },
            },
          },
        },
      },
      [format(["text", "json"])],
    ),
    "/timestamp": api(
      "time",
      "Time",
      "Plain text with a newline, or JSON with milliseconds since the epoch.",
      {
        "text/plain": line,
        "application/json": object({ timestamp, unix_ms: { type: "integer" } }),
      },
      [format(["text", "json"])],
    ),
    "/time": timePath(),
    "/healthz": healthPath(object({ status: { const: "ok" } })),
    "/livez": api(
      "meta",
      "Liveness",
      "Answers while the process serves, whatever its clock: for a " +
        "liveness probe (a restart cannot fix a node's clock).",
      { "application/json": object({ status: { const: "ok" } }) },
    ),
    "/openapi.json": api("meta", "This document", "OpenAPI 3.1.", {
      "application/json": { schema: { type: "object" } },
    }),
  };
}

// Readiness: with CLOCK_MAX_ERROR_MS, a 503 of its own besides the stack's.
function healthPath(ok: Json): Json {
  const item = api(
    "meta",
    "Readiness",
    "Answers while the process serves; with `CLOCK_MAX_ERROR_MS` set, a " +
      "503 while the server's clock is unsynchronised, unknown, or its " +
      "maximum error exceeds that many ms. For a readiness probe, never " +
      "a liveness one (`/livez`).",
    { "application/json": ok },
  );
  const get = item.get as { responses: Json };
  get.responses["503"] = {
    description: "The clock cannot be vouched for within " +
      "`CLOCK_MAX_ERROR_MS`; *stack*: no worker is available.",
    headers: HEADERS,
    content: {
      "application/json": {
        schema: {
          oneOf: [{ $ref: "#/components/schemas/Error" }, {
            type: "object",
            required: ["status", "synchronized", "max_error_ms", "limit_ms"],
            additionalProperties: false,
            properties: {
              status: { const: "clock unsynchronised" },
              synchronized: { type: ["boolean", "null"] },
              max_error_ms: { type: ["number", "null"] },
              limit_ms: { type: "integer", description: "The setting." },
            },
          }],
        },
      },
    },
  };
  return item;
}

// Milliseconds since the epoch with sub-millisecond precision.
const preciseMs = { type: "number" };

function timeSchema(): Json {
  return {
    type: "object",
    required: ["utc", "unix", "unix_ms", "clock"],
    additionalProperties: false,
    properties: {
      utc: { $ref: "#/components/schemas/Timestamp" },
      unix: { type: "integer", description: "Whole seconds since the epoch." },
      unix_ms: { type: "integer" },
      tz: { type: "string", description: "The zone's canonical IANA name." },
      local: {
        type: "string",
        description: "ISO 8601 in that zone, with its offset.",
        examples: ["2025-12-12T13:34:56.789+01:00"],
      },
      utc_offset: { type: "string", pattern: "^[+-]\\d{2}:\\d{2}$" },
      dst: { type: "boolean" },
      tz_basis: {
        enum: ["country", "city", "guess"],
        description:
          "With `tz=auto` (the caller's zone): how it was decided, as /api/ip's `timezone_basis`.",
      },
      t0: { ...preciseMs, description: "Echoed from the query." },
      t1: { ...preciseMs, description: "When the request reached the server." },
      t2: { ...preciseMs, description: "Just before the answer was written." },
      clock: { $ref: "#/components/schemas/Clock" },
    },
    dependentRequired: {
      tz: ["local", "utc_offset", "dst"],
      t0: ["t1", "t2"],
    },
  };
}

// What the server knows of its own clock (clock.ts), as NTP tells it.
function clockSchema(): Json {
  const ms = (what: string) => ({
    type: ["number", "null"],
    minimum: 0,
    description: `${what}, ms; null when unknown.`,
  });
  return {
    type: "object",
    description: "The server clock's state as its kernel keeps it " +
      "(adjtimex): how far `utc` may be from true UTC. All null and " +
      "`leap` `unknown` when nothing vouches for it (the service alone, " +
      "or the kernel's reading older than 3 s).",
    required: [
      "synchronized",
      "max_error_ms",
      "est_error_ms",
      "leap",
      "tai_offset_s",
      "source",
    ],
    additionalProperties: false,
    properties: {
      synchronized: {
        type: ["boolean", "null"],
        description: "Whether a time daemon keeps the clock synchronised.",
      },
      max_error_ms: ms("The bound on the clock's error"),
      est_error_ms: ms("The estimate of the clock's error"),
      leap: {
        enum: ["none", "insert", "delete", "unknown"],
        description: "A leap second at the end of this UTC day (NTP's " +
          "leap indicator); `unknown` when unsynchronised.",
      },
      tai_offset_s: {
        type: ["integer", "null"],
        description: "TAI − UTC, s; null when the kernel was not told.",
      },
      source: {
        enum: ["kernel", null],
        description: "`kernel`, or null when nothing vouches for the clock.",
      },
    },
  };
}

/** The tags of this service's paths; another path's tag is derived. */
const TAGS: Record<string, string> = {
  address: "The address the service sees the caller coming from.",
  time: "The server's clock, and what a client needs to measure its own.",
  meta: "The service itself: liveness, readiness, and this document.",
  page: "The files of the page that `GET /` shows a browser.",
  [WORLDTIME_TAG.name]: WORLDTIME_TAG.description,
};

const METHODS = ["get", "head", "options", "post", "put", "patch", "delete"];

/**
 * The `operationId` of `method` on `path`: the method, then each word of
 * the path capitalized, a `{parameter}` as `By` and its name; `/` is
 * `Root`. `GET /ip` is `getIp`, `HEAD /openapi.json` `headOpenapiJson`,
 * `GET /api/timezone/{zone}` `getApiTimezoneByZone`.
 */
export function operationId(method: string, path: string): string {
  const cap = (w: string) => w[0].toUpperCase() + w.slice(1).toLowerCase();
  const words = path.split("/").filter((p) => p !== "").flatMap((part) =>
    part.startsWith("{")
      ? ["By", ...part.slice(1, -1).split(/[^A-Za-z0-9]+/).filter(Boolean)]
      : part.split(/[^A-Za-z0-9]+/).filter(Boolean)
  ).map(cap);
  return method.toLowerCase() + (words.length ? words.join("") : "Root");
}

// A path without a tag of its own: its first segment after `/api`.
function derivedTag(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== "api");
  return parts[0]?.replace(/\{|\}|\..*$/g, "") || "root";
}

/**
 * Every operation of `paths` completed with what generators and linters
 * need, whoever wrote it: an `operationId` from {@linkcode operationId},
 * tags (its path's GET's, else derived from the path), a summary (its
 * method and path) and a description (its summary) when it has none. Each
 * operation becomes its own object (builders share some).
 */
export function withConventions(
  paths: Record<string, unknown>,
): Record<string, unknown> {
  const ids = new Set<string>();
  const done: Json = {};
  for (const [path, item] of Object.entries(paths as Record<string, Json>)) {
    const get = item.get as Json | undefined;
    const tags = (get?.tags as string[] | undefined) ?? [derivedTag(path)];
    const ops: Json = {};
    for (const [method, value] of Object.entries(item)) {
      if (!METHODS.includes(method)) {
        ops[method] = value;
        continue;
      }
      const op = value as Json;
      const id = (op.operationId as string | undefined) ??
        operationId(method, path);
      if (ids.has(id)) throw new Error(`Two operations named ${id}`);
      ids.add(id);
      const summary = op.summary ?? `${method.toUpperCase()} ${path}`;
      ops[method] = {
        operationId: id,
        tags,
        summary,
        description: summary,
        ...op,
      };
    }
    done[path] = ops;
  }
  return done;
}

// The tags the operations use, each described.
function tagList(paths: Json): Json[] {
  const used = new Set<string>();
  for (const item of Object.values(paths as Record<string, Json>)) {
    for (const op of Object.values(item as Record<string, Json>)) {
      for (const tag of (op.tags as string[] | undefined) ?? []) used.add(tag);
    }
  }
  return [...used].map((name) => ({
    name,
    description: TAGS[name] ?? `The paths under /api/${name} or /${name}.`,
  }));
}

/** Returns the document for this version of the service. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths = withConventions({
    ...apiPaths(),
    ...staticPaths(),
    ...worldTimePaths(),
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "ip-timestamp",
      version,
      description:
        "The current UTC time and the IP address the service sees a caller " +
        `coming from. Every path allows ${ALLOWED_METHODS.join(", ")}; ` +
        "another method gets a 405 (with `Allow`), a path not listed here a " +
        "404: both in `x-unlisted-requests`. Errors are JSON. Statuses " +
        "marked *stack* come from nginx in front of the workers " +
        "(`deno task stack`). " + DATA_SOURCES,
      contact: { name: "ip-timestamp" },
      license: { name: "MIT", identifier: "MIT" },
      "x-tz-release": TZDB_VERSION,
    },
    servers: [{
      url: "http://{host}:{port}",
      description: "Where it runs: the service alone (`deno task start`) " +
        "or the stack (`deno task stack`, port 8080).",
      variables: {
        host: { default: "127.0.0.1", description: "Its address or name." },
        port: { default: "8000", description: "`PORT`." },
      },
    }],
    // A public API: no credentials, for any operation.
    security: [],
    tags: tagList(paths),
    paths,
    components: components(),
    "x-unlisted-requests": unlisted(),
  };
}

// What any request outside the operations gets: not an operation of its
// own, so not in `components` (which only operations reference).
function unlisted(): Json {
  return {
    description: "The answers to a request no operation describes.",
    responses: {
      "404": error("No such path."),
      "405": error("Not GET, HEAD or OPTIONS.", { Allow: header("Allow") }),
    },
  };
}

function error(description: string, extra: Json = {}): Json {
  return {
    description,
    headers: { ...HEADERS, ...extra },
    content: {
      "application/json": { schema: { $ref: "#/components/schemas/Error" } },
    },
  };
}

function components(): Json {
  return {
    schemas: {
      Timestamp: {
        type: "string",
        description: "UTC, ISO 8601, three fractional digits, `+00:00`.",
        pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}\\+00:00$",
        examples: ["2025-12-12T12:34:56.789+00:00"],
      },
      Ip: {
        type: "string",
        description:
          "Dotted-quad IPv4 or RFC 5952 IPv6; IPv4-mapped IPv6 is shown as IPv4.",
        examples: ["203.0.113.7", "2001:db8::1"],
      },
      Clock: clockSchema(),
      Error: {
        type: "object",
        required: ["error"],
        additionalProperties: false,
        properties: { error: { type: "string" } },
      },
    },
    headers: headers(),
    responses: {
      Preflight: {
        description: "A CORS preflight: the methods allowed, for a day.",
        headers: {
          ...HEADERS,
          Allow: header("Allow"),
          "Access-Control-Allow-Methods": { schema: { const: "GET, HEAD" } },
        },
      },
      BadRequest: error(
        "A malformed request: an unknown `format`, `tz` or a bad `t0`, a Host that is not a " +
          "host, a path with a bad `%` escape or `%00`; *stack*: a request " +
          "nginx cannot parse, a raw byte outside ASCII in the target, or a " +
          "worker not told the client's address.",
      ),
      PreconditionFailed: error("*stack*: If-Match names another version."),
      ContentTooLarge: error(
        "Any request that announces a body (`Content-Length` other than " +
          "0, or `Transfer-Encoding`): the API takes none, answers at once " +
          "without reading it, and closes the connection.",
      ),
      UriTooLong: error("*stack*: a request target over 8 KiB."),
      HeadersTooLarge: error(
        "An `Accept` over 1024 bytes; *stack*: a header line over 8 KiB.",
      ),
      TooManyRequests: error("*stack*: over `RATE_LIMIT` from one address.", {
        "Retry-After": header("Retry-After"),
      }),
      InternalError: error("A failure; the log has the details."),
      NotImplemented: error("*stack*: a Transfer-Encoding other than chunked."),
      VersionNotSupported: error("*stack*: an HTTP version other than 1.x."),
      BadGateway: error("*stack*: no worker answered."),
      Unavailable: error("*stack*: no worker is available."),
      GatewayTimeout: error("*stack*: a worker took too long."),
    },
  };
}

function headers(): Json {
  return {
    "X-Request-Id": {
      description: "The caller's id when it is sane, else a new one.",
      required: true,
      schema: { type: "string", pattern: REQUEST_ID_PATTERN.source },
    },
    "Cache-Control": {
      description:
        "`no-store` (each answer is per caller and per instant), except on " +
        "static files, which say how long they may be kept.",
      required: true,
      schema: { type: "string" },
    },
    Allow: {
      description: "The methods every path allows.",
      required: true,
      schema: { const: ALLOWED_METHODS.join(", ") },
    },
    "Retry-After": {
      description: "Seconds to wait.",
      required: true,
      schema: { type: "string", pattern: "^\\d+$" },
    },
  };
}
