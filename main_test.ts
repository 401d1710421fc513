// The API contract, in-process through `app.request()`.
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApp, ROUTES } from "./service/app.ts";
import { formatTimestamp } from "./service/timestamp.ts";
import { pageCsp } from "./service/page.ts";
import { parseRange } from "./service/client_ip.ts";
import { COMMON_HEADERS } from "./service/common_headers.ts";
import type { ForwardedHeader } from "./service/config.ts";
import { createLogger, type LogFields, type Logger } from "./service/log.ts";
import { VERSION } from "./main.ts";
import { STATIC_PATHS } from "./tests/test_util.ts";
import { worldTimePaths } from "./service/openapi_worldtime.ts";

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/;

function tcp(hostname: string): Deno.ServeHandlerInfo {
  return {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
    completed: Promise.resolve(),
  };
}
const UNIX = {
  remoteAddr: { transport: "unix", path: "" },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

/** One line a {@linkcode recorder} was given. */
interface Logged {
  level: string;
  msg: string;
  fields: LogFields;
}

/** A logger that keeps every line, for tests that read the log. */
function recorder(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const keep = (level: string) => (msg: string, fields: LogFields = {}) => {
    lines.push({ level, msg, fields });
  };
  return {
    lines,
    enabled: () => true,
    debug: keep("debug"),
    info: keep("info"),
    warn: keep("warn"),
    error: keep("error"),
  };
}

function app(
  trusted: string[] = [],
  header: ForwardedHeader = "x-forwarded-for",
  logger: Logger = createLogger("error"),
) {
  return createApp({
    trustedProxies: trusted.map(parseRange),
    forwardedHeader: header,
    logger,
    version: VERSION,
  });
}

async function get(
  path: string,
  headers: Record<string, string> = {},
  info: Deno.ServeHandlerInfo = tcp("203.0.113.7"),
  method = "GET",
) {
  const res = await app().request(path, { method, headers }, info);
  return { res, body: await res.text() };
}

Deno.test("GET / answers exactly timestamp and ip as JSON", async () => {
  const before = Date.now();
  const { res, body } = await get("/");
  const after = Date.now();
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  const json = JSON.parse(body);
  assert.deepEqual(Object.keys(json), ["timestamp", "ip"]);
  assert.equal(json.ip, "203.0.113.7");
  assert.match(json.timestamp, TIMESTAMP);
  const t = Date.parse(json.timestamp);
  assert.ok(t >= before && t <= after, "timestamp is read per request");
});

Deno.test("timestamps are UTC with three fractional digits, never Z", () => {
  for (
    const [ms, text] of [
      [0, "1970-01-01T00:00:00.000+00:00"],
      [1765542896789, "2025-12-12T12:34:56.789+00:00"],
      [1765542896000, "2025-12-12T12:34:56.000+00:00"],
      [951782400001, "2000-02-29T00:00:00.001+00:00"],
    ] as const
  ) {
    assert.equal(formatTimestamp(new Date(ms)), text);
  }
});

Deno.test("GET /ip is plain text by default and JSON when asked", async () => {
  let { res, body } = await get("/ip");
  assert.equal(body, "203.0.113.7\n");
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  ({ res, body } = await get("/ip", { accept: "application/json" }));
  assert.deepEqual(JSON.parse(body), { ip: "203.0.113.7", family: "ipv4" });
  ({ body } = await get("/ip?format=json"));
  assert.deepEqual(JSON.parse(body), { ip: "203.0.113.7", family: "ipv4" });
  ({ body } = await get("/ip", { accept: "*/*" }));
  assert.equal(body, "203.0.113.7\n");
});

Deno.test("GET /timestamp gives text, or JSON with unix_ms", async () => {
  let { body } = await get("/timestamp");
  assert.match(body.trimEnd(), TIMESTAMP);
  assert.ok(body.endsWith("\n"));
  ({ body } = await get("/timestamp", { accept: "application/json" }));
  const json = JSON.parse(body);
  assert.deepEqual(Object.keys(json), ["timestamp", "unix_ms"]);
  assert.equal(Date.parse(json.timestamp), json.unix_ms);
});

Deno.test("an unknown format is a 400 JSON error that never echoes it", async () => {
  for (const format of ["xml", "<script>", "%22%3E"]) {
    const { res, body } = await get(`/ip?format=${format}`);
    assert.equal(res.status, 400);
    assert.deepEqual(JSON.parse(body), {
      error: "Unsupported format: expected text or json",
    });
  }
});

Deno.test("GET /healthz is ok", async () => {
  const { res, body } = await get("/healthz");
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(body), { status: "ok" });
});

Deno.test("every answer carries the common headers, errors included", async () => {
  const cases: [string, string, number][] = [
    ...ROUTES.map((p) => ["GET", p, 200] as [string, string, number]),
    ...ROUTES.map((p) => ["HEAD", p, 200] as [string, string, number]),
    ...ROUTES.map((p) => ["OPTIONS", p, 204] as [string, string, number]),
    ...ROUTES.map((p) => ["DELETE", p, 405] as [string, string, number]),
    ...STATIC_PATHS.map((p) => ["GET", p, 200] as [string, string, number]),
    ["GET", "/nope", 404],
    ["POST", "/nope", 404],
    ["GET", "/static/nope.js", 404],
    ["GET", "/ip?format=bad", 400],
  ];
  for (const [method, path, status] of cases) {
    const { res } = await get(path, {}, tcp("203.0.113.7"), method);
    const what = `${method} ${path}`;
    assert.equal(res.status, status, what);
    for (const [name, value] of Object.entries(COMMON_HEADERS)) {
      // Static files have their own caching.
      if (name === "cache-control" && STATIC_PATHS.includes(path)) continue;
      assert.equal(res.headers.get(name), value, `${what}: ${name}`);
    }
    assert.match(res.headers.get("x-request-id") ?? "", /^[\w-]{8,}$/, what);
    assert.equal(res.headers.get("server"), null, what);
    assert.equal(res.headers.get("x-powered-by"), null, what);
  }
});

Deno.test("ROUTES and the static files are exactly the app's routes", () => {
  const paths = app().routes.filter((r) => r.method === "GET").map((r) =>
    r.path
  );
  assert.deepEqual(paths.sort(), [...ROUTES, ...STATIC_PATHS].sort());
});

Deno.test("Vary: Accept is set where the body depends on it", async () => {
  for (const path of ["/", "/ip", "/timestamp"]) {
    assert.equal((await get(path)).res.headers.get("vary"), "Accept", path);
  }
});

Deno.test("HEAD has the headers of GET, its Content-Length, and no body", async () => {
  const browser = { accept: "text/html" };
  for (
    const [path, headers] of [
      ...[...ROUTES, ...STATIC_PATHS].map((p) => [p, {}] as const),
      ["/", browser] as const,
      ["/nope", {}] as const,
    ]
  ) {
    const full = await app().request(path, { headers }, tcp("203.0.113.7"));
    const length = (await full.arrayBuffer()).byteLength;
    const head = await get(path, headers, tcp("203.0.113.7"), "HEAD");
    assert.equal(head.res.status, full.status, path);
    assert.equal(head.body, "", path);
    assert.equal(
      head.res.headers.get("content-type"),
      full.headers.get("content-type"),
      path,
    );
    assert.equal(head.res.headers.get("content-length"), String(length), path);
  }
});

Deno.test("OPTIONS is a CORS preflight allowing GET and HEAD", async () => {
  const { res, body } = await get(
    "/",
    {
      origin: "https://example.com",
      "access-control-request-method": "GET",
    },
    tcp("203.0.113.7"),
    "OPTIONS",
  );
  assert.equal(res.status, 204);
  assert.equal(body, "");
  assert.equal(res.headers.get("access-control-allow-methods"), "GET, HEAD");
  assert.equal(res.headers.get("access-control-allow-credentials"), null);
});

Deno.test("another method on a known path is 405 with Allow", async () => {
  for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
    const { res, body } = await get("/ip", {}, tcp("203.0.113.7"), method);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
    // The method is the client's word: not echoed.
    assert.deepEqual(JSON.parse(body), { error: "Method not allowed" });
  }
});

Deno.test("an unknown path is a 404 JSON error", async () => {
  const { res, body } = await get("/wp-login.php");
  assert.equal(res.status, 404);
  assert.deepEqual(JSON.parse(body), { error: "Not found" });
});

Deno.test("a failure is a 500 with no internals; the log has the details", async () => {
  const log = recorder();
  // No connection info at all: the address cannot be known.
  const res = await app([], "x-forwarded-for", log).request("/", {
    headers: { "x-request-id": "trace-123" },
  });
  assert.equal(res.status, 500);
  const body = await res.text();
  assert.deepEqual(JSON.parse(body), { error: "Internal server error" });
  assert.doesNotMatch(body, /at |\.ts|Error:/);
  assert.equal(res.headers.get("x-request-id"), "trace-123");
  const [logged] = log.lines.filter((l) => l.level === "error");
  assert.equal(logged.fields.request_id, "trace-123");
  assert.match(String(logged.fields.stack), /app\.ts/);
});

Deno.test("a sane X-Request-Id is reused, anything else replaced", async () => {
  let { res } = await get("/", { "x-request-id": "abc-123.DEF_4:5" });
  assert.equal(res.headers.get("x-request-id"), "abc-123.DEF_4:5");
  for (const bad of ["a b", "<script>", "x".repeat(129), "é"]) {
    ({ res } = await get("/", { "x-request-id": bad }));
    const id = res.headers.get("x-request-id")!;
    assert.notEqual(id, bad);
    assert.match(id, /^[0-9a-f-]{36}$/);
  }
});

Deno.test("behind the Unix socket, X-Real-IP is the address, normalized", async () => {
  for (
    const [given, shown] of [
      ["198.51.100.4", "198.51.100.4"],
      ["2001:DB8:0:0::1", "2001:db8::1"],
      ["::ffff:192.0.2.1", "192.0.2.1"],
      ["fe80::1", "fe80::1"],
    ]
  ) {
    const { body } = await get("/ip", { "x-real-ip": given }, UNIX);
    assert.equal(body, shown + "\n");
  }
});

Deno.test("behind the Unix socket, a missing or bad X-Real-IP is an error, never echoed", async () => {
  const log = recorder();
  const unix = app([], "x-forwarded-for", log);
  for (
    const given of [
      undefined,
      "",
      "unknown",
      "1.2.3.4, 5.6.7.8",
      "<b>1.2.3.4</b>",
      "1.2.3.4:80",
      // nginx never writes a zone id; no client has these addresses.
      "1.2.3.4%<script>",
      "fe80::1%eth0",
      "0.0.0.0",
      "::",
    ]
  ) {
    const headers: Record<string, string> = given === undefined
      ? {}
      : { "x-real-ip": given };
    const res = await unix.request("/", { headers }, UNIX);
    const body = await res.text();
    assert.equal(res.status, 400, String(given));
    assert.deepEqual(JSON.parse(body), {
      error: "The proxy did not supply a valid client address",
    });
  }
  // Routes that do not need the address still answer.
  assert.equal((await unix.request("/timestamp", {}, UNIX)).status, 200);
  // One error line per bad request, naming the problem.
  assert.deepEqual(
    log.lines.filter((l) => l.level === "error").map((l) => l.msg),
    Array(10).fill("proxy sent no valid X-Real-IP"),
  );
});

Deno.test("over TCP, forwarding headers are ignored unless the peer is trusted", async () => {
  const spoof = {
    "x-forwarded-for": "1.1.1.1",
    "x-real-ip": "2.2.2.2",
    forwarded: "for=3.3.3.3",
    "cf-connecting-ip": "4.4.4.4",
    "true-client-ip": "5.5.5.5",
  };
  let res = await app().request("/ip", { headers: spoof }, tcp("203.0.113.7"));
  assert.equal(await res.text(), "203.0.113.7\n");
  res = await app(["10.0.0.0/8"]).request(
    "/ip",
    { headers: spoof },
    tcp("203.0.113.7"),
  );
  assert.equal(await res.text(), "203.0.113.7\n");
  res = await app(["10.0.0.0/8"]).request(
    "/ip",
    { headers: spoof },
    tcp("10.1.2.3"),
  );
  assert.equal(await res.text(), "1.1.1.1\n");
  res = await app(["10.0.0.0/8"], "forwarded").request("/ip", {
    headers: spoof,
  }, tcp("10.1.2.3"));
  assert.equal(await res.text(), "3.3.3.3\n");
});

Deno.test("over TCP, the peer address is normalized", async () => {
  for (
    const [peer, shown] of [
      ["::1", "::1"],
      ["::ffff:127.0.0.1", "127.0.0.1"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ]
  ) {
    const res = await app().request("/ip", {}, tcp(peer));
    assert.equal(await res.text(), shown + "\n");
  }
});

Deno.test("the OpenAPI document is valid 3.1 and lists every route", async () => {
  const { res, body } = await get("/openapi.json");
  assert.equal(res.status, 200);
  const doc = JSON.parse(body);
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors));
  assert.equal(validator.version, "3.1");
  // The templated worldtimeapi paths are the routes' parameters.
  const templated = Object.keys(worldTimePaths()).filter((p) =>
    p.includes("{")
  );
  assert.deepEqual(
    Object.keys(doc.paths).sort(),
    [...ROUTES, ...STATIC_PATHS, ...templated].sort(),
  );
  assert.equal(doc.info.version, VERSION);
});

Deno.test("GET / negotiates: browsers get HTML, everyone else JSON", async () => {
  const browser =
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
  let { res, body } = await get("/", { accept: browser });
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(res.headers.get("content-security-policy"), pageCsp({}));
  assert.match(body, /<output id="ip">203\.0\.113\.7<\/output>/);
  assert.doesNotMatch(
    body,
    /<script>|<style>|style=/,
    "no inline script or style",
  );
  for (const accept of [undefined, "*/*", "application/json", "text/plain"]) {
    ({ res, body } = await get("/", accept ? { accept } : {}));
    assert.equal(
      res.headers.get("content-type"),
      "application/json",
      String(accept),
    );
    assert.deepEqual(Object.keys(JSON.parse(body)), ["timestamp", "ip"]);
  }
  ({ res } = await get("/?format=json", { accept: browser }));
  assert.equal(res.headers.get("content-type"), "application/json");
});

Deno.test("the page escapes what it shows", async () => {
  const { renderPage } = await import("./service/page.ts");
  const html = renderPage({
    ip: '<img src=x onerror="1">',
    timestamp: "t",
  });
  assert.ok(!html.includes("<img"));
  assert.ok(html.includes("&lt;img src=x onerror=&quot;1&quot;&gt;"));
});

Deno.test("static files are served with their types and long caching", async () => {
  const { res, body } = await get("/static/app.js");
  assert.equal(
    res.headers.get("content-type"),
    "text/javascript; charset=utf-8",
  );
  // Exactly the file's own policy, not added to no-store.
  assert.equal(
    res.headers.get("cache-control"),
    "public, max-age=31536000, immutable",
  );
  assert.match(body, /`\/time\?t0=\$\{t0\}`/);
  const icon = await app().request("/favicon.ico", {}, tcp("203.0.113.7"));
  assert.equal(icon.headers.get("content-type"), "image/x-icon");
  assert.deepEqual([...new Uint8Array(await icon.arrayBuffer()).slice(0, 4)], [
    0,
    0,
    1,
    0,
  ]);
});

Deno.test("/ip's JSON names the family; IPv4-mapped clients are IPv4; / stays two keys", async () => {
  for (
    const [peer, ip, family] of [
      ["198.51.100.4", "198.51.100.4", "ipv4"],
      ["2001:db8::7", "2001:db8::7", "ipv6"],
      ["::ffff:198.51.100.4", "198.51.100.4", "ipv4"],
    ]
  ) {
    const res = await app().request("/ip?format=json", {}, tcp(peer));
    assert.deepEqual(await res.json(), { ip, family }, peer);
    const behindNginx = await app().request("/ip?format=json", {
      headers: { "x-real-ip": peer },
    }, UNIX);
    assert.deepEqual(await behindNginx.json(), { ip, family }, peer);
    const root = await app().request("/", {}, tcp(peer));
    assert.deepEqual(Object.keys(await root.json()), ["timestamp", "ip"]);
  }
});

Deno.test("GET /time gives UTC, unix seconds and ms from one reading", async () => {
  const before = Date.now();
  const { res, body } = await get("/time");
  const after = Date.now();
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const json = JSON.parse(body);
  // And the clock's state: unknown here, with no source (app_clock_test.ts).
  assert.deepEqual(Object.keys(json), ["utc", "unix", "unix_ms", "clock"]);
  assert.match(json.utc, TIMESTAMP);
  assert.equal(Date.parse(json.utc), json.unix_ms);
  assert.equal(json.unix, Math.floor(json.unix_ms / 1000));
  assert.ok(json.unix_ms >= before - 1 && json.unix_ms <= after + 1);
});

Deno.test("GET /time?tz= adds the zone's local time, offset and DST flag", async () => {
  const { res, body } = await get("/time?tz=Asia/Kathmandu");
  assert.equal(res.status, 200);
  const json = JSON.parse(body);
  assert.deepEqual(Object.keys(json), [
    "utc",
    "unix",
    "unix_ms",
    "tz",
    "local",
    "utc_offset",
    "dst",
    "clock",
  ]);
  assert.equal(json.tz, "Asia/Kathmandu");
  assert.equal(json.utc_offset, "+05:45");
  assert.equal(json.dst, false);
  assert.match(
    json.local,
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+05:45$/,
  );
  assert.equal(Date.parse(json.local), json.unix_ms, "the same instant");
});

Deno.test("GET /time with an unknown zone or a bad t0 is a 400 that echoes nothing", async () => {
  for (
    const query of [
      "tz=Mars%2FOlympus",
      "tz=%3Cscript%3E",
      "tz=",
      "t0=abc",
      "t0=Infinity",
      "t0=1e400",
      "t0=",
    ]
  ) {
    const { res, body } = await get(`/time?${query}`);
    assert.equal(res.status, 400, query);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("cache-control"), "no-store");
    const { error } = JSON.parse(body);
    assert.match(error, /^(Unknown time zone|Invalid t0):/);
    assert.doesNotMatch(error, /Mars|script|abc|Infinity|1e400/);
  }
});

Deno.test("the /time exchange lets a client measure a known clock offset", async () => {
  // The server's clock runs 5 s ahead of this one.
  const skewed = createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: VERSION,
    clock: () => performance.timeOrigin + performance.now() + 5000,
  });
  const precise = () => performance.timeOrigin + performance.now();
  const t0 = precise();
  const res = await skewed.request(`/time?t0=${t0}`, {}, tcp("127.0.0.1"));
  const json = await res.json();
  const t3 = precise();
  assert.equal(json.t0, t0, "t0 is echoed as a number");
  assert.ok(json.t1 <= json.t2, "t1 is read before t2");
  const offset = ((json.t1 - json.t0) + (json.t2 - t3)) / 2;
  const delay = (t3 - json.t0) - (json.t2 - json.t1);
  assert.ok(delay >= 0 && delay < 1000, `delay ${delay}`);
  assert.ok(
    Math.abs(offset - 5000) <= delay / 2 + 0.01,
    `offset ${offset} ± ${delay / 2}`,
  );
  assert.ok(Math.abs(json.unix_ms - 5000 - Date.now()) < 1000, "one clock");
});

Deno.test("the page's policy connects to itself and exactly the family origins", async () => {
  const withOrigins = createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: VERSION,
    origins: { ipv4: "https://v4.example.com", ipv6: "http://[::1]:8080" },
  });
  const res = await withOrigins.request("/", {
    headers: { accept: "text/html" },
  }, tcp("127.0.0.1"));
  assert.match(
    res.headers.get("content-security-policy")!,
    /; connect-src 'self' https:\/\/v4\.example\.com http:\/\/\[::1\]:8080;/,
  );
  const html = await res.text();
  assert.match(
    html,
    /<output id="ipv4" data-origin="https:\/\/v4\.example\.com">/,
  );
  assert.match(html, /<output id="ipv6" data-origin="http:\/\/\[::1\]:8080">/);
  const { body } = await get("/", { accept: "text/html" });
  assert.doesNotMatch(body, /id="families"/, "no section without origins");
});
