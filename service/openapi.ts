/**
 * The OpenAPI 3.1 description of what the service sends, served at
 * `/openapi.json`: every path with its GET, HEAD and OPTIONS, every status
 * each can answer in either mode (the service alone or the stack behind
 * nginx), and, in `components`, the 404 and 405 that any other path or
 * method gets. tests/openapi_test.ts holds it to the real answers.
 *
 * @module
 */
import { REQUEST_ID_PATTERN } from "./answer.ts";
import { ALLOWED_METHODS } from "./common_headers.ts";
import { STATIC_FILES } from "./static_files.ts";
import { DATA_SOURCES, worldTimePaths } from "./openapi_worldtime.ts";

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
  return { summary: `${get.summary} (headers only)`, responses };
}

// Always answered by the app, so behind nginx a worker's errors too.
const options: Json = {
  summary: "CORS preflight",
  responses: { "204": response("Preflight"), ...ERRORS, ...PROXY_ERRORS },
};

function api(
  summary: string,
  description: string,
  content: Json,
  parameters: unknown[] = [],
): Json {
  const get = {
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
    summary: "Static file",
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
      "Time and address",
      "JSON by default; a browser that prefers `text/html` gets a page.",
      {
        "application/json": object({ timestamp, ip }),
        "text/html": { schema: { type: "string" } },
      },
      [format(["json", "html"])],
    ),
    "/ip": api(
      "Address",
      "Plain text with a newline, or JSON when preferred.",
      {
        "text/plain": line,
        "application/json": object({
          ip,
          family: { type: "string", enum: ["ipv4", "ipv6"] },
        }),
      },
      [format(["text", "json"])],
    ),
    "/timestamp": api(
      "Time",
      "Plain text with a newline, or JSON with milliseconds since the epoch.",
      {
        "text/plain": line,
        "application/json": object({ timestamp, unix_ms: { type: "integer" } }),
      },
      [format(["text", "json"])],
    ),
    "/time": timePath(),
    "/healthz": api("Liveness", "Answers while the process serves.", {
      "application/json": object({ status: { const: "ok" } }),
    }),
    "/openapi.json": api("This document", "OpenAPI 3.1.", {
      "application/json": { schema: { type: "object" } },
    }),
  };
}

// Milliseconds since the epoch with sub-millisecond precision.
const preciseMs = { type: "number" };

function timeSchema(): Json {
  return {
    type: "object",
    required: ["utc", "unix", "unix_ms"],
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
    },
    dependentRequired: {
      tz: ["local", "utc_offset", "dst"],
      t0: ["t1", "t2"],
    },
  };
}

/** Returns the document for this version of the service. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "ip-timestamp",
      version,
      description:
        "The current UTC time and the IP address the service sees a caller " +
        `coming from. Every path allows ${ALLOWED_METHODS.join(", ")}; ` +
        "another method gets `MethodNotAllowed` (405, with `Allow`), a path " +
        "not listed here `NotFound` (404). Errors are JSON. Statuses marked " +
        "*stack* come from nginx in front of the workers (`deno task stack`). " +
        DATA_SOURCES,
      license: { name: "MIT", identifier: "MIT" },
    },
    paths: { ...apiPaths(), ...staticPaths(), ...worldTimePaths() },
    components: components(),
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
      NotFound: error("No such path."),
      MethodNotAllowed: error("Not GET, HEAD or OPTIONS.", {
        Allow: header("Allow"),
      }),
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
