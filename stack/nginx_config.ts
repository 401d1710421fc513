/**
 * Renders `nginx/nginx.conf` from the stack's settings.
 *
 * @module
 */
import template from "../nginx/nginx.conf" with { type: "text" };
import { COMMON_HEADERS } from "../service/common_headers.ts";
import { STATIC_FILES } from "../service/static_files.ts";
import { formatRange, parseRange } from "../service/client_ip.ts";
import {
  ACCEPT_LIMIT,
  HOST_PATTERN,
  NO_BODY_LENGTH,
  REFUSALS,
} from "../service/request_rules.ts";
import type { StackConfig } from "./stack_config.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";
import { clientMaps } from "./client_key.ts";

/**
 * nginx's own error answers, by the status nginx raises: each is JSON with
 * the common headers. (Its 405s go to a worker instead: nginx.conf.)
 */
export const NGINX_ERRORS: Record<number, [number, string]> = {
  400: [400, "Bad request"],
  403: [403, "Forbidden"],
  404: [404, "Not found"],
  408: [408, "Request timeout"],
  411: [411, "Length required"],
  412: [412, "Precondition failed"],
  413: [413, REFUSALS.body.message],
  414: [414, "URI too long"],
  416: [416, "Range not satisfiable"],
  429: [429, "Too many requests"],
  // nginx's internal code for oversized headers, answered as 431.
  494: [431, REFUSALS.accept.message],
  500: [500, "Internal server error"],
  501: [501, "Not implemented"],
  502: [502, "Bad gateway"],
  503: [503, "Service unavailable"],
  504: [504, "Gateway timeout"],
  505: [505, "HTTP version not supported"],
};

// `always`, so that error answers carry them too. A location with an
// add_header of its own inherits none, so each lists them all.
function addHeaders(own: Record<string, string> = {}): string[] {
  return Object.entries({ ...COMMON_HEADERS, ...own }).map(
    ([name, value]) => `add_header ${name} "${value}" always;`,
  ).concat('add_header x-request-id "$req_id" always;');
}

/**
 * The `RateLimit-Policy` field (draft-ietf-httpapi-ratelimit-headers-12,
 * the current revision; syntax as in -11 §3): `rate` requests a second per
 * client address; nginx also lets a burst of twice that through. `rate` is
 * a validated whole number.
 */
export function rateLimitPolicy(rate: number): string {
  return `"per-address";q=${rate};w=1;ipts-burst=${rate * 2}`;
}

function indent(lines: string[], spaces: number): string {
  return lines.map((line) => " ".repeat(spaces) + line).join("\n");
}

/**
 * What nginx answers itself because of the request: logged as `STATUS
 * CLIENT` (log_relay.ts counts them), counted by the rate limit but 429s.
 */
export const REFUSED_STATUSES = [400, 408, 413, 414, 429, 431];

// limit_req's arguments: a burst of twice the rate at once.
const limitReq = (rate: number) => `zone=per_client burst=${rate * 2} nodelay`;

// URI locations, not named ones: nginx cannot redirect a request whose
// request line it could not parse to a named location. limit_req counts
// after the rewrite phase, where `return` answers: a refusal's page counts
// first, then answers from a named location (try_files: the root is a
// directory, never a file; a request counts once).
function errorPages(rate: number): string {
  const lines: string[] = [];
  for (const [raised, [status]] of Object.entries(NGINX_ERRORS)) {
    lines.push(`error_page ${raised} =${status} /_errors/${status};`);
  }
  for (const [status, message] of new Map(Object.values(NGINX_ERRORS))) {
    const own: Record<string, string> = status === 429
      ? { "retry-after": "1" }
      : {};
    const policy = status === 429 && rate > 0
      ? [`add_header RateLimit-Policy '${rateLimitPolicy(rate)}' always;`]
      : [];
    const answer = [
      "default_type application/json;",
      ...addHeaders(own),
      ...policy,
      `return ${status} '${JSON.stringify({ error: message })}\\n';`,
    ];
    const named = `@error_${status}`;
    const limited = rate > 0 && status !== 429 &&
      REFUSED_STATUSES.includes(status);
    const page = limited
      ? [`limit_req ${limitReq(rate)};`, `try_files "" ${named};`]
      : answer;
    lines.push(`location = /_errors/${status} {`, "  internal;");
    lines.push(...page.map((line) => "  " + line), "}");
    if (limited) {
      lines.push(`location ${named} {`, ...answer.map((l) => "  " + l), "}");
    }
  }
  return indent(lines, 4);
}

// The request rules of service/request_rules.ts as maps: the same patterns.
// No Host at all is allowed (HTTP/1.0); an empty one nginx refuses itself.
function requestRules(): string {
  return indent([
    "map $http_host $host_refused {",
    '  "" 0;',
    `  "~${HOST_PATTERN}" 0;`,
    "  default 1;",
    "}",
    "map $content_length$http_transfer_encoding $announces_body {",
    '  "" 0;',
    `  "~${NO_BODY_LENGTH}" 0;`,
    "  default 1;",
    "}",
    // One regex a request for both what Accept is refused for (its length)
    // and whether it reaches the workers (printable: nginx.conf).
    "map $http_accept $accept_class {",
    '  "" printable;',
    `  "~^[\\x20-\\x7e\\t]{0,${ACCEPT_LIMIT}}$" printable;`,
    `  "~^.{${ACCEPT_LIMIT + 1}}" long;`,
    "  default other;",
    "}",
    "map $accept_class $accept_too_long {",
    "  long 1;",
    "  default 0;",
    "}",
  ], 2);
}

/**
 * The refusals every location a client reaches first makes, in the app's
 * order; 494 is nginx's code for headers too large (a JSON 431). A raw byte
 * outside printable ASCII in the target is not a URI (RFC 3986), and a
 * worker would answer it with an empty 400.
 */
function refusals(): string[] {
  return [
    'if ($request_uri ~ "[^\\x21-\\x7e]") {',
    "  return 400;",
    "}",
    "if ($host_refused) {",
    "  return 400;",
    "}",
    "if ($announces_body) {",
    "  return 413;",
    "}",
    "if ($accept_too_long) {",
    "  return 494;",
    "}",
  ];
}

// One exact location per file, with the file's own type and caching and the
// headers every answer carries, as the app sends them under `deno task dev`.
function staticLocations(publicDir: string): string {
  const lines: string[] = [];
  for (const [path, file] of STATIC_FILES) {
    lines.push(
      `location = ${path} {`,
      `  root ${publicDir};`,
      `  default_type "${file.type}";`,
      // Ranges of files this small save nothing.
      "  max_ranges 0;",
      ...refusals().map((l) => "  " + l),
      ...addHeaders({ "cache-control": file.cacheControl }).map((l) =>
        "  " + l
      ),
      "}",
    );
  }
  return indent(lines, 4);
}

const PLAIN_PATH = /^\/[A-Za-z0-9._\/-]+$/;

function refuse(field: string, value: unknown): never {
  throw new Error(
    `Refusing to render nginx.conf: ${field} ${
      JSON.stringify(value)
    } is not in normal form`,
  );
}

function wholeNumber(field: string, value: number, min: number, max: number) {
  if (!Number.isInteger(value) || value < min || value > max) {
    refuse(field, value);
  }
}

/**
 * Checks that every value the template receives is in the one form
 * `loadStackConfig` produces, so that no setting, whatever path it took,
 * can add a directive to the config: nginx reads `;`, `{`, quotes and
 * spaces as syntax.
 */
export function assertRenderable(config: StackConfig): void {
  if (!PLAIN_PATH.test(config.runtimeDir) || config.runtimeDir.includes("..")) {
    refuse("runtimeDir", config.runtimeDir);
  }
  wholeNumber("port", config.port, 1, 65535);
  wholeNumber("workers", config.workers, 1, 64);
  wholeNumber("nginxWorkers", config.nginxWorkers, 1, 64);
  wholeNumber("rateLimit", config.rateLimit, 0, 1_000_000);
  for (const entry of config.trustedProxies) {
    let normal: string | undefined;
    try {
      normal = formatRange(parseRange(entry));
    } catch {
      // Refused below.
    }
    if (normal !== entry) refuse("trustedProxies", entry);
  }
}

/** Requests in progress one client (IPv6: one /64) may have, at a rate limit. */
export function connectionLimit(rate: number): number {
  // nginx refuses a limit of 65,536 or more (RATE_LIMIT goes to 1,000,000).
  return Math.min(65535, Math.max(32, rate));
}

/**
 * Fills the template, listening on IPv6 too if `ipv6`; every field is
 * validated config, never raw input.
 */
export function renderNginxConfig(config: StackConfig, ipv6: boolean): string {
  assertRenderable(config);
  const dir = config.runtimeDir;
  const layout = runtimeLayout(dir);
  const rate = config.rateLimit;
  const fields: Record<string, string> = {
    PID_FILE: layout.nginxPid,
    ALIVE_SOCKET: layout.nginxAlive,
    NGINX_TEMP: layout.nginx,
    NGINX_WORKERS: String(config.nginxWorkers),
    PORT: String(config.port),
    LISTEN_IPV6: ipv6
      ? `    listen [::]:${config.port} ipv6only=on reuseport backlog=4096;`
      : "",
    // The client, by the service's rules (client_key.ts).
    REAL_IP: indent(clientMaps(config.trustedProxies), 2),
    RATE_LIMIT_ZONE: rate === 0 ? "" : [
      `  limit_req_zone $client_key zone=per_client:10m rate=${rate}r/s;`,
      "  limit_req_status 429;",
      // Below error_log's level (warn): nginx writes no line per refusal;
      // the access log's refused line is counted instead (log_relay.ts).
      "  limit_req_log_level info;",
      // Requests in progress per client (bodies are refused at once, so
      // these are requests a worker has not answered yet): a slow or hung
      // worker is not filled by one client.
      "  limit_conn_zone $client_key zone=per_client_conn:10m;",
      "  limit_conn_status 429;",
      "  limit_conn_log_level info;",
    ].join("\n"),
    RATE_LIMIT: rate === 0 ? "" : [
      `      limit_req ${limitReq(rate)};`,
      `      limit_conn per_client_conn ${connectionLimit(rate)};`,
      // A location's own add_header drops the server's: list them all.
      ...addHeaders().map((line) => `      ${line}`),
      `      add_header RateLimit-Policy '${rateLimitPolicy(rate)}' always;`,
    ].join("\n"),
    UPSTREAMS: Array.from(
      { length: config.workers },
      (_, i) =>
        `    server unix:${workerSocket(dir, i)} max_fails=1 fail_timeout=2s;`,
    ).join("\n"),
    ADD_HEADERS: indent(addHeaders(), 4),
    REQUEST_RULES: requestRules(),
    REFUSE: indent(refusals(), 6),
    STATIC_LOCATIONS: staticLocations(layout.public),
    ERROR_PAGES: errorPages(rate),
    REFUSED: indent(
      REFUSED_STATUSES.map((status) => `${status} $nginx_answered;`),
      4,
    ),
  };
  const text = template.replace(/\{\{([A-Z_0-9]+)\}\}/g, (_, name: string) => {
    if (!(name in fields)) throw new Error(`Unknown template field ${name}`);
    return fields[name];
  });
  return text;
}
