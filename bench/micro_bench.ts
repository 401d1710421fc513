// `deno bench`: the per-request work, without sockets.
import { Hono } from "hono";
import { html } from "hono/html";
import { HTTPException } from "hono/http-exception";
import { type App, type AppOptions, createApp } from "../service/app.ts";
import { formatTimestamp } from "../service/timestamp.ts";
import {
  parseAddress,
  parseRange,
  resolveClient,
  splitForwardedFor,
} from "../service/client_ip.ts";
import { createLogger } from "../service/log.ts";
import { embeddedCountry } from "../service/geo_db.ts";

const info = {
  remoteAddr: { transport: "unix", path: "" },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;
const options: AppOptions = {
  trustedProxies: [],
  forwardedHeader: "x-forwarded-for",
  logger: createLogger("error"),
  version: "bench",
};
// A stack worker's app, and the service's own on TCP (which checks Host).
const app = createApp(options);
const tcpApp = app;
const tcp = {
  remoteAddr: { transport: "tcp", hostname: "203.0.113.9", port: 40000 },
  completed: Promise.resolve(),
} as Deno.ServeHandlerInfo;
const trusted = ["10.0.0.0/8", "fd00::/8"].map(parseRange);
const peer = parseAddress("10.0.0.1")!;

Deno.bench("formatTimestamp(new Date())", () => {
  formatTimestamp(new Date());
});

Deno.bench("X-Real-IP parse and normalize (IPv6)", () => {
  parseAddress("2001:db8::1");
});

// The embedded country database: target <= 10 µs a lookup (docs/geo.md).
const lookups = [
  "81.2.69.1",
  "2001:1290::1",
  "8.36.217.1",
  "2001:240:1f1:15::1",
];
let next = 0;
Deno.bench("country lookup (embedded database, both families)", {
  group: "geo",
}, () => {
  embeddedCountry(lookups[next++ & 3]);
});

Deno.bench("resolveClient over a 4-hop X-Forwarded-For", () => {
  resolveClient(
    peer,
    splitForwardedFor("203.0.113.9, 10.1.1.1, 10.2.2.2, 10.3.3.3"),
    trusted,
  );
});

// Each answer's cost as a ratio to GET / on a worker, from the same run.
async function answer(
  target: App,
  path: string,
  init: RequestInit,
  via: Deno.ServeHandlerInfo,
) {
  await (await target.request(path, init, via)).arrayBuffer();
}
const realIp = { "x-real-ip": "203.0.113.9" };

Deno.bench("GET / through app.request (Unix-socket mode)", {
  group: "answers",
  baseline: true,
}, () => answer(app, "/", { headers: realIp }, info));

Deno.bench(
  "HEAD / (Content-Length counted)",
  { group: "answers" },
  () => answer(app, "/", { method: "HEAD", headers: realIp }, info),
);

Deno.bench(
  "GET / as the page (hono/html)",
  { group: "answers" },
  () => answer(app, "/", { headers: { ...realIp, accept: "text/html" } }, info),
);

Deno.bench(
  "GET /ip?format=bad (HTTPException, 400)",
  { group: "answers" },
  () => answer(app, "/ip?format=bad", { headers: realIp }, info),
);

// What /time costs against / (no X-Real-IP needed: it reads no address).
for (
  const path of [
    "/time",
    "/time?t0=1765542896789.125",
    "/time?tz=Europe/Berlin&t0=1765542896789.125",
  ]
) {
  Deno.bench(
    `GET ${path}`,
    { group: "answers" },
    () => answer(app, path, {}, info),
  );
}

Deno.bench(
  "GET / on TCP (common headers, Host check)",
  { group: "answers" },
  () => answer(tcpApp, "/", { headers: { host: "example.com:8000" } }, tcp),
);

// Library against hand-written, for the choices docs/http.md reports: the
// hand-written side is the code the app had before it used the library.
const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
const escape = (text: string) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
const [ip, at, v] = ["2001:db8::1", "2025-12-12T12:34:56.789+00:00", "1.0.0"];

Deno.bench("page fields: hand-written escaping", {
  group: "escaping",
  baseline: true,
}, () => {
  `<title>${escape(ip)}</title><output>${escape(ip)}</output><time datetime="${
    escape(at)
  }">${escape(at)}</time><a href="?v=${escape(v)}">`;
});

Deno.bench("page fields: hono/html", { group: "escaping" }, () => {
  String(
    html`
      <title>${ip}</title><output>${ip}</output><time
        datetime="${at}">${at}</time><a href="?v=${v}">
    `,
  );
});

class ClientError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
function throwing(make: () => Error): Hono {
  const app = new Hono();
  app.get("/", () => {
    throw make();
  });
  app.onError((err) =>
    new Response(err.message, { status: (err as ClientError).status })
  );
  return app;
}
const handMade = throwing(() => new ClientError(400, "bad"));
const library = throwing(() => new HTTPException(400, { message: "bad" }));

Deno.bench("a 400 thrown: hand-made ClientError", {
  group: "errors",
  baseline: true,
}, () => answer(handMade, "/", {}, tcp));

Deno.bench(
  "a 400 thrown: HTTPException",
  { group: "errors" },
  () => answer(library, "/", {}, tcp),
);
