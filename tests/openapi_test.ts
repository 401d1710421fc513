// One table of requests, two servers: the service alone (`deno task start`)
// and the stack (`deno task stack`, nginx in front). Each answer must be
// what the table expects, declared by the OpenAPI document (status, type,
// body schema, required headers), and carry each common header once.
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import openapiTS, { astToString, type OpenAPI3 } from "openapi-typescript";
import { createApp, ROUTES } from "../service/app.ts";
import { parseRange } from "../service/client_ip.ts";
import { createLogger } from "../service/log.ts";
import { decodeTimex, UNKNOWN_CLOCK } from "../service/clock.ts";
import { COMMON_HEADERS } from "../service/common_headers.ts";
import {
  openApiDocument,
  operationId,
  withConventions,
} from "../service/openapi.ts";
import { STATIC_FILES } from "../service/static_files.ts";
import { VERSION } from "../main.ts";
import { exchange, parseAnswer, type RawAnswer } from "./http_answer.ts";
import {
  denoTask,
  listening,
  needs,
  onFreePort,
  PROJECT_DIR,
  type Running,
  withStack,
  withTempDir,
} from "./test_util.ts";

type Mode = "service" | "stack";
type Json = Record<string, unknown>;

/**
 * A request and the status each mode answers; a mode left out is one where
 * the runtime, not this project, answers (the report says which and why).
 */
interface Case {
  request: string | Uint8Array;
  service?: number;
  stack?: number;
  /** The document's path for it, when it is not the request's. */
  as?: string;
  /** The media type the answer must have. */
  type?: string;
}

const BROWSER =
  "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const h = (lines: string[] = []) =>
  ["Host: x", "Connection: close", ...lines].join("\r\n") + "\r\n\r\n";
const req = (method: string, target: string, lines: string[] = []) =>
  `${method} ${target} HTTP/1.1\r\n${h(lines)}`;
const both = (status: number) => ({ service: status, stack: status });

const STATIC = [...STATIC_FILES.keys()];

const CASES: Case[] = [
  ...[...ROUTES, ...STATIC].flatMap((p) => [
    { request: req("GET", p), ...both(200) },
    { request: req("HEAD", p), ...both(200) },
    { request: req("OPTIONS", p), ...both(204) },
    { request: req("DELETE", p), ...both(405) },
  ]),
  {
    request: req("GET", "/", [`Accept: ${BROWSER}`]),
    ...both(200),
    type: "text/html",
  },
  { request: req("HEAD", "/", [`Accept: ${BROWSER}`]), ...both(200) },
  { request: req("GET", "/?format=html"), ...both(200), type: "text/html" },
  { request: req("GET", "/ip?format=json"), ...both(200) },
  { request: req("GET", "/timestamp?format=json"), ...both(200) },
  {
    request: req("GET", "/time?tz=Asia/Kathmandu&t0=1765542896789.5"),
    ...both(200),
  },
  { request: req("GET", "/time?tz=Mars%2FOlympus"), ...both(400) },
  { request: req("GET", "/time?t0=Infinity"), ...both(400) },
  { request: req("GET", "/ip", ["Accept: application/json"]), ...both(200) },
  // Accept's q=0 means "not this" (RFC 9110 §12.5.1).
  {
    request: req("GET", "/ip", ["Accept: text/plain;q=0, */*"]),
    ...both(200),
    type: "application/json",
  },
  {
    request: req("GET", "/", ["Accept: application/json;q=0, */*"]),
    ...both(200),
    type: "text/html",
  },
  { request: req("GET", "/?format=%3Cscript%3E"), ...both(400) },
  { request: req("GET", "/nope"), ...both(404) },
  { request: req("GET", "/%zz"), ...both(400) },
  { request: req("GET", "/ip%00"), ...both(400) },
  { request: req("GET", "/ip?x=%"), ...both(200) },
  { request: req("GET", "/%ff%fe%c3"), ...both(404) },
  { request: req("GET", "/ip?format=json&format=%ff"), ...both(200) },
  { request: req("GET", "//ip"), ...both(404) },
  { request: req("GET", "/static/"), ...both(404) },
  { request: req("PUT", "/static/app.js"), ...both(405) },
  { request: req("PUT", "/static/nope.js"), ...both(404) },
  { request: req("TRACE", "/nope"), ...both(404) },
  { request: req("TRACE", "/ip"), ...both(405) },
  { request: req("BREW", "/"), ...both(405) },
  // Ranges of tiny files are ignored: the whole file.
  {
    request: req("GET", "/static/app.js", ["Range: bytes=99999-"]),
    ...both(200),
  },
  {
    request: `GET / HTTP/1.1\r\nHost: a b<>\r\nConnection: close\r\n\r\n`,
    ...both(400),
  },
  // nginx cannot parse the asterisk form (a 400 of its own).
  { request: req("OPTIONS", "*"), service: 204, stack: 400, as: "*" },
  // The API takes no body: both doors refuse one at once.
  {
    request: `POST / HTTP/1.1\r\nContent-Length: 5000\r\n${h()}${
      "a".repeat(5000)
    }`,
    service: 413,
    stack: 413,
  },
  // Only nginx keeps validators (ETag) for static files.
  {
    request: req("GET", "/static/app.js", ['If-Match: "nope"']),
    service: 200,
    stack: 412,
  },
  // Below, Deno.serve answers the service alone itself (an empty 400 or a
  // reset): not the app's to change (docs/http.md).
  { request: req("GET", "/ip", ["Transfer-Encoding: gzip"]), stack: 501 },
  { request: `GET /ip HTTP/2.0\r\n${h()}`, stack: 505 },
  { request: bytes("GET /\xff HTTP/1.1\r\n" + h()), stack: 400 },
  { request: bytes("GET /ip?a=\xff HTTP/1.1\r\n" + h()), stack: 400 },
  { request: req("GET", "/" + "a".repeat(9000)), stack: 414 },
  { request: req("GET", "/", ["X-Big: " + "a".repeat(9000)]), stack: 431 },
  {
    request: req(
      "GET",
      "/ip",
      Array.from({ length: 150 }, (_, i) => `X-${i}: 1`),
    ),
    stack: 200,
  },
  { request: `GET /ip HTTP/1.1\r\nHost: a\r\n${h()}`, stack: 400 },
  { request: req("GET", "/ip", ["Accept: a\x01b"]), stack: 200 },
  // Without Host: the service cannot tell HTTP/1.1 from h2c (docs/http.md).
  {
    request: "GET /ip HTTP/1.1\r\nConnection: close\r\n\r\n",
    service: 200,
    stack: 400,
  },
];

function bytes(latin1: string): Uint8Array {
  return Uint8Array.from(latin1, (c) => c.charCodeAt(0));
}

const doc = openApiDocument(VERSION) as Json;
const ajv = new Ajv2020({ strict: false });

// Replaces every local $ref with what it points to.
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (value === null || typeof value !== "object") return value;
  const ref = (value as Json).$ref;
  if (typeof ref === "string") {
    let target: unknown = doc;
    for (const key of ref.slice(2).split("/")) target = (target as Json)[key];
    return resolve(target);
  }
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, resolve(v)]),
  );
}

// What the document declares for an answer: the operation's response, or
// for any other path or method, one of the answers any request can get.
function declared(method: string, path: string, status: number): Json {
  const op = ((doc.paths as Json)[path] as Json | undefined)?.[
    method.toLowerCase()
  ] as Json | undefined;
  const anywhere: Record<number, string> = {
    204: "Preflight",
    400: "BadRequest",
    413: "ContentTooLarge",
    414: "UriTooLong",
    431: "HeadersTooLarge",
    501: "NotImplemented",
    505: "VersionNotSupported",
  };
  const unlisted = (doc["x-unlisted-requests"] as { responses: Json })
    .responses;
  const found = op ? (op.responses as Json)[status] : unlisted[status] ??
    (doc.components as { responses: Json }).responses[anywhere[status]];
  assert.ok(found, `the document declares ${status} for ${method} ${path}`);
  return resolve(found) as Json;
}

function targetOf(c: Case): { method: string; path: string } {
  const text = typeof c.request === "string"
    ? c.request
    : new TextDecoder("latin1").decode(c.request);
  const [method, target] = text.split(" ");
  return { method, path: c.as ?? target.split("?")[0] };
}

function checkAgainstDocument(method: string, path: string, a: RawAnswer) {
  const response = declared(method, path, a.status);
  const content = response.content as Record<string, Json> | undefined;
  if (!content || method === "HEAD") {
    assert.equal(a.body, "", "no body");
  } else {
    const type = a.get("content-type")?.split(";")[0] ?? "";
    assert.ok(type in content, `declared type ${type}`);
    const body = type === "application/json" ? JSON.parse(a.body) : a.body;
    const validate = ajv.compile(content[type].schema as Json);
    assert.ok(validate(body), JSON.stringify(validate.errors));
  }
  const headers = (response.headers ?? {}) as Record<string, Json>;
  for (const [name, spec] of Object.entries(headers)) {
    const value = a.get(name.toLowerCase());
    if (spec.required) assert.ok(value !== undefined, `header ${name}`);
    if (value !== undefined) {
      const validate = ajv.compile(spec.schema as Json);
      assert.ok(validate(value), `${name}: ${value}`);
    }
  }
}

// Each common header exactly once (a static file's own Cache-Control
// replaces no-store), and one request id.
function checkCommonHeaders(method: string, path: string, a: RawAnswer) {
  const file = (method === "GET" || method === "HEAD") && a.status < 400
    ? STATIC_FILES.get(path)
    : undefined;
  for (const [name, value] of Object.entries(COMMON_HEADERS)) {
    const expected = name === "cache-control" && file
      ? file.cacheControl
      : value;
    assert.deepEqual(a.all(name), [expected], name);
  }
  assert.equal(a.all("x-request-id").length, 1, "x-request-id once");
  // A static file's exact type, charset included, in both modes.
  if (file) assert.deepEqual(a.all("content-type"), [file.type]);
}

async function runTable(mode: Mode, port: number): Promise<void> {
  const failures: string[] = [];
  for (const c of CASES) {
    const expected = c[mode];
    if (expected === undefined) continue;
    const { method, path } = targetOf(c);
    const request = typeof c.request === "string"
      ? bytes(c.request)
      : c.request;
    const what = `${mode}: ${method} ${path.slice(0, 40)}`;
    try {
      const answer = parseAnswer(await exchange(port, request));
      assert.equal(answer.status, expected, "status");
      if (c.type) {
        assert.equal(answer.get("content-type")?.split(";")[0], c.type);
      }
      if (answer.status >= 400) {
        // Nothing the client sent comes back in an error.
        assert.doesNotMatch(answer.body, /script|BREW|nope|aaaa|\xff/i);
      }
      checkAgainstDocument(method, path, answer);
      checkCommonHeaders(method, path, answer);
      if (method === "HEAD") await checkHeadLength(port, request, answer);
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  assert.deepEqual(failures, []);
}

// HEAD's Content-Length is GET's (RFC 9110 §9.3.2).
async function checkHeadLength(
  port: number,
  request: Uint8Array,
  head: RawAnswer,
) {
  const get = new Uint8Array([...bytes("GET"), ...request.slice(4)]);
  const answer = parseAnswer(await exchange(port, get));
  assert.equal(
    head.get("content-length"),
    String(
      new TextEncoder().encode(answer.body).length === 0
        ? 0
        : answer.get("content-length"),
    ),
    "HEAD's content-length is GET's",
  );
}

/** The service on a free port (another if the port is taken under it). */
function service(): Promise<{ port: number; proc: Running }> {
  return onFreePort(async (port) => ({
    port,
    proc: await listening(
      denoTask("start", { PORT: String(port), HOST: "127.0.0.1" }),
    ),
  }));
}

Deno.test("the service alone answers the table as its OpenAPI document says", async () => {
  const { port, proc } = await service();
  try {
    await runTable("service", port);
  } finally {
    proc.child.kill("SIGTERM");
    await proc.child.status;
    await proc.drained;
  }
});

// Public addresses have a country and a zone, which loopback and the
// documentation ranges hide; they arrive as a trusted proxy names them.
const PUBLIC = ["8.8.8.8", "2001:4860:4860::8888"];

// The document's path for a request path: the template that matches with
// the most literal text (`/api/ip/{address}.txt` over `/api/ip/{address}`).
function documentPath(path: string): string {
  const literal = (t: string) => t.replace(/\{[^}]+\}/g, "").length;
  const templates = Object.keys(doc.paths as Json).filter((t) =>
    new RegExp(
      `^${t.split(/\{[^}]+\}/).map(RegExp.escape).join("[^/]+")}$`,
    ).test(path)
  );
  return templates.sort((a, b) => literal(b) - literal(a))[0] ?? path;
}

/** Every route, with its formats and templates, asked for by `address`. */
function publicTargets(address: string): string[] {
  const zones = ["Europe", "UTC", "Europe/Berlin", "America/Argentina/Salta"];
  return [
    ...ROUTES,
    ...STATIC,
    "/?format=html",
    "/ip?format=json",
    "/timestamp?format=json",
    "/time?tz=auto&t0=1765542896789.5",
    "/time?tz=America/New_York",
    ...zones.flatMap((z) => [`/api/timezone/${z}`, `/api/timezone/${z}.txt`]),
    `/api/ip/${address}`,
    `/api/ip/${address}.txt`,
  ];
}

async function rawAnswerOf(res: Response): Promise<RawAnswer> {
  const headers = [...res.headers];
  const all = (name: string) =>
    headers.filter(([n]) => n === name).map(([, v]) => v);
  const body = await res.text();
  return { status: res.status, headers, body, all, get: (n) => all(n)[0] };
}

Deno.test("answers to public addresses of both families, in winter and summer, are what the document declares on every route", async () => {
  const proxy: Deno.ServeHandlerInfo = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
    completed: Promise.resolve(),
  };
  const failures: string[] = [];
  // New York's winter (no DST dates) and summer (both DST dates); a clock
  // nothing vouches for, and one a daemon keeps with a leap second armed.
  const synced = decodeTimex({
    state: 1,
    status: 0x2011,
    maxerror: 4000,
    esterror: 150,
    tai: 37,
  });
  const seasons = [
    [Date.UTC(2025, 0, 15, 12), UNKNOWN_CLOCK],
    [Date.UTC(2025, 6, 15, 12), synced],
  ] as const;
  for (const [when, state] of seasons) {
    const app = createApp({
      trustedProxies: [parseRange("127.0.0.1")],
      forwardedHeader: "x-forwarded-for",
      logger: createLogger("error"),
      version: VERSION,
      clock: () => when + 0.25,
      clockState: () => state,
    });
    for (const address of PUBLIC) {
      const json = await (await app.request("/ip?format=json", {
        headers: { "x-forwarded-for": address },
      }, proxy)).json();
      assert.equal(json.ip, address, "the forwarded address is the client");
      assert.match(json.country, /^[A-Z]{2}$/, "a public address's country");
      for (const target of publicTargets(address)) {
        const path = documentPath(target.split("?")[0]);
        const res = await app.request(target, {
          headers: { "x-forwarded-for": address },
        }, proxy);
        try {
          assert.equal(res.status, 200, "status");
          checkAgainstDocument("GET", path, await rawAnswerOf(res));
        } catch (err) {
          failures.push(
            `${address} GET ${target}: ${
              (err as Error).message.split("\n")[0]
            }`,
          );
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});

Deno.test("/healthz's 503 for a clock beyond CLOCK_MAX_ERROR_MS is what the document declares", async () => {
  const app = createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: VERSION,
    clockState: () => UNKNOWN_CLOCK,
    clockMaxErrorMs: 100,
  });
  const res = await app.request("/healthz", {}, {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
    completed: Promise.resolve(),
  });
  assert.equal(res.status, 503);
  checkAgainstDocument("GET", "/healthz", await rawAnswerOf(res));
});

Deno.test({
  name: "the stack answers the table as its OpenAPI document says",
  ignore: !needs("nginx"),
  fn: () => withStack({}, (stack) => runTable("stack", stack.port)),
});

Deno.test({
  name: "the stack's rate limit answers 429 as the document says",
  ignore: !needs("nginx"),
  fn: () =>
    withStack({ RATE_LIMIT: "1" }, async (stack) => {
      const request = bytes(req("GET", "/ip"));
      let limited: RawAnswer | undefined;
      for (let i = 0; i < 50 && !limited; i++) {
        const answer = parseAnswer(await exchange(stack.port, request));
        if (answer.status === 429) limited = answer;
      }
      assert.ok(limited, "a 429 within 50 requests");
      checkAgainstDocument("GET", "/ip", limited);
      checkCommonHeaders("GET", "/ip", limited);
      assert.deepEqual(limited.all("retry-after"), ["1"]);
    }),
});

// A client as a user would generate it: types from the document by
// openapi-typescript, requests by openapi-fetch. It must type-check (a
// path the document lacks must not), and its calls must get what the types
// promise from the running service.
const CLIENT = `
import createClient from "openapi-fetch";
import type { operations, paths } from "./api.d.ts";

const client = createClient<paths, "application/json">({ baseUrl: Deno.args[0] });
const ip = await client.GET("/ip", { params: { query: { format: "json" } } });
// Generators name each operation after its operationId.
type IpAnswer = operations["getIp"]["responses"][200]["content"]["application/json"];
const answer: IpAnswer | undefined = ip.data;
const time = await client.GET("/time", {
  params: { query: { tz: "Asia/Kathmandu", t0: 1765542896789.5 } },
});
const utc: string | undefined = time.data?.utc;
const offset: string | undefined = time.data?.utc_offset;
const bad = await client.GET("/time", { params: { query: { tz: "Mars/Olympus" } } });
const refused: string | undefined = bad.error?.error;
console.log(JSON.stringify({ answer, utc, offset, status: bad.response.status, refused }));

export function neverCalled() {
  // @ts-expect-error: the document has no such path
  return client.GET("/nope");
}
`;

// Runs deno on the generated client: with the packages `deno task test`
// installed (no download, whose lines would land in the output), stdout
// apart from stderr.
async function deno([command, ...args]: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [command, "--quiet", "--cached-only", "--frozen", ...args],
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  const stdout = decode(output.stdout);
  return { code: output.code, stdout, out: stdout + decode(output.stderr) };
}

Deno.test("a client generated from the document type-checks and calls the service", () =>
  withTempDir(async (dir) => {
    const types = astToString(await openapiTS(doc as unknown as OpenAPI3));
    await Deno.writeTextFile(`${dir}/api.d.ts`, types);
    await Deno.writeTextFile(`${dir}/client.ts`, CLIENT);
    const config = `${PROJECT_DIR}deno.json`;
    const check = await deno(["check", "--config", config, `${dir}/client.ts`]);
    assert.equal(check.code, 0, check.out);
    const { port, proc } = await service();
    try {
      const run = await deno([
        "run",
        "--config",
        config,
        `--allow-net=127.0.0.1:${port}`,
        `${dir}/client.ts`,
        `http://127.0.0.1:${port}`,
      ]);
      assert.equal(run.code, 0, run.out);
      const got = JSON.parse(run.stdout);
      assert.deepEqual(got.answer, { ip: "127.0.0.1", family: "ipv4" });
      assert.match(got.utc, /\+00:00$/);
      assert.equal(got.offset, "+05:45");
      assert.equal(got.status, 400);
      assert.match(got.refused, /^Unknown time zone|tz/i);
    } finally {
      proc.child.kill("SIGTERM");
      await proc.child.status;
      await proc.drained;
    }
  }));

Deno.test("every operation has an operationId from its method and path, a declared tag, a summary and a description", () => {
  assert.equal(operationId("get", "/"), "getRoot");
  assert.equal(operationId("head", "/openapi.json"), "headOpenapiJson");
  assert.equal(
    operationId("get", "/api/timezone/{zone}"),
    "getApiTimezoneByZone",
  );
  const declaredTags = (doc.tags as { name: string }[]).map((t) => t.name);
  const ids: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const [method, op] of Object.entries(item as Record<string, Json>)) {
      if (method === "parameters") continue; // shared by the path's operations
      // Derived from method and path, unless a module named it itself.
      if (!path.startsWith("/api/")) {
        assert.equal(op.operationId, operationId(method, path));
      }
      assert.match(String(op.operationId), /^[a-z][A-Za-z0-9]+$/);
      ids.push(op.operationId as string);
      const tags = op.tags as string[];
      assert.ok(tags.length > 0 && tags.every((t) => declaredTags.includes(t)));
      assert.ok(op.summary && op.description, `${method} ${path}`);
    }
  }
  assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
  assert.deepEqual(doc.security, []);
});

Deno.test("a path another module adds gets the same operationId, tag, summary and description", () => {
  const paths = withConventions({
    "/api/timezone/{zone}": {
      get: { summary: "A zone's time", responses: {} },
      head: { responses: {} },
      parameters: [],
    },
  }) as Record<string, Record<string, Json>>;
  const item = paths["/api/timezone/{zone}"];
  assert.deepEqual(item.get.operationId, "getApiTimezoneByZone");
  assert.deepEqual(item.get.tags, ["timezone"]);
  assert.equal(item.get.description, "A zone's time");
  assert.equal(item.head.operationId, "headApiTimezoneByZone");
  assert.equal(item.head.summary, "HEAD /api/timezone/{zone}");
  assert.deepEqual(item.parameters, []);
});
