// The app and the server clock's state: `/time` says it, `/healthz` acts on
// it under CLOCK_MAX_ERROR_MS, `/livez` never does. A fake clock source.
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { type ClockState, UNKNOWN_CLOCK } from "./clock.ts";
import { createLogger } from "./log.ts";

const SYNCED: ClockState = {
  synchronized: true,
  max_error_ms: 4,
  est_error_ms: 0.15,
  leap: "none",
  tai_offset_s: 37,
  source: "kernel",
};
const UNSYNCED: ClockState = {
  synchronized: false,
  max_error_ms: 16000,
  est_error_ms: 16000,
  leap: "unknown",
  tai_offset_s: null,
  source: "kernel",
};

const PEER: Deno.ServeHandlerInfo = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
  completed: Promise.resolve(),
};

function app(clockState?: () => ClockState, clockMaxErrorMs?: number) {
  return createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: "0.0.0",
    clockState,
    clockMaxErrorMs,
  });
}

async function get(a: ReturnType<typeof app>, path: string) {
  const res = await a.request(path, {}, PEER);
  return { res, json: await res.json() };
}

Deno.test("every /time answer carries the clock's state as the source says it at that request", async () => {
  let state = SYNCED;
  const a = app(() => state);
  for (
    const path of [
      "/time",
      "/time?tz=Europe/Berlin",
      "/time?t0=1765542896789.5",
      "/time?tz=auto&t0=1",
    ]
  ) {
    const { json } = await get(a, path);
    assert.deepEqual(json.clock, SYNCED, path);
    assert.equal(Object.keys(json).at(-1), "clock", `${path}: last`);
  }
  state = UNSYNCED;
  assert.deepEqual((await get(a, "/time")).json.clock, UNSYNCED);
});

Deno.test("without a clock source /time says nothing vouches for the clock", async () => {
  const { json } = await get(app(), "/time");
  assert.deepEqual(json.clock, UNKNOWN_CLOCK);
  assert.deepEqual(json.clock, {
    synchronized: null,
    max_error_ms: null,
    est_error_ms: null,
    leap: "unknown",
    tai_offset_s: null,
    source: null,
  });
});

Deno.test("/ and the worldtimeapi answers keep their own fields, no clock", async () => {
  const a = app(() => SYNCED);
  assert.deepEqual(Object.keys((await get(a, "/")).json), ["timestamp", "ip"]);
  for (const path of ["/api/ip", "/api/timezone/Europe/Berlin"]) {
    assert.equal((await get(a, path)).json.clock, undefined, path);
  }
});

Deno.test("with CLOCK_MAX_ERROR_MS, /healthz is 503 while the clock is unsynchronised, unknown or over the bound, and 200 again after", async () => {
  let state: ClockState = SYNCED;
  const a = app(() => state, 100);
  const healthz = () => get(a, "/healthz");
  let { res, json } = await healthz();
  assert.equal(res.status, 200);
  assert.deepEqual(json, { status: "ok" });
  const bad: [ClockState, boolean | null, number | null][] = [
    [UNSYNCED, false, 16000],
    [UNKNOWN_CLOCK, null, null],
    [{ ...SYNCED, max_error_ms: 100.5 }, true, 100.5],
  ];
  for (const [clock, synchronized, max] of bad) {
    state = clock;
    ({ res, json } = await healthz());
    assert.equal(res.status, 503, JSON.stringify(clock));
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual(json, {
      status: "clock unsynchronised",
      synchronized,
      max_error_ms: max,
      limit_ms: 100,
    });
  }
  state = { ...SYNCED, max_error_ms: 100 };
  ({ res, json } = await healthz());
  assert.equal(res.status, 200, "back once within the bound");
  assert.deepEqual(json, { status: "ok" });
});

Deno.test("without CLOCK_MAX_ERROR_MS /healthz ignores the clock, and /livez always does", async () => {
  assert.equal((await get(app(() => UNSYNCED), "/healthz")).res.status, 200);
  const strict = app(() => UNSYNCED, 100);
  const { res, json } = await get(strict, "/livez");
  assert.equal(res.status, 200);
  assert.deepEqual(json, { status: "ok" });
  assert.equal((await get(strict, "/healthz")).res.status, 503);
});
