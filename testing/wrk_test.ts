import assert from "node:assert/strict";
import { failures, millis, parseWrk } from "./wrk.ts";

// Printed by wrk 4.1.0 (Debian) against `deno task dev`, with --latency.
const LATENCY = `Running 1s test @ http://127.0.0.1:8000/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.06ms    2.73ms  24.24ms   92.33%
    Req/Sec    15.00k     5.33k   21.62k    60.00%
  Latency Distribution
     50%  178.00us
     75%  341.00us
     90%    2.52ms
     99%   14.99ms
  29964 requests in 1.02s, 10.60MB read
Requests/sec:  29427.80
Transfer/sec:     10.41MB
`;

// The same against a 404 path, without --latency; the socket error line is
// wrk's format ("Socket errors: connect %d, read %d, write %d, timeout %d").
const ERRORS = `Running 1s test @ http://127.0.0.1:8000/nope
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.16ms    9.56ms  71.19ms   95.27%
    Req/Sec    39.27k    12.06k   47.59k    81.82%
  42952 requests in 1.10s, 13.27MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 42952
Requests/sec:  39061.33
Transfer/sec:     12.07MB
`;

Deno.test("parseWrk reads requests, rate and latency percentiles", () => {
  assert.deepEqual(parseWrk(LATENCY), {
    requests: 29964,
    rps: 29427.8,
    p50: 0.178,
    p99: 14.99,
    non2xx: 0,
    errors: { connect: 0, read: 0, write: 0, timeout: 0 },
  });
});

Deno.test("parseWrk counts non-2xx answers and each kind of socket error", () => {
  const result = parseWrk(ERRORS);
  assert.equal(result.non2xx, 42952);
  assert.deepEqual(result.errors, {
    connect: 1,
    read: 2,
    write: 3,
    timeout: 4,
  });
  assert.equal(failures(result), 42952 + 10);
  assert.ok(Number.isNaN(result.p99), "no percentiles without --latency");
});

Deno.test("millis converts wrk's us, ms and s", () => {
  assert.deepEqual(
    ["812.00us", "2.85ms", "1.02s", "", "3m"].map(millis),
    [0.812, 2.85, 1020, NaN, NaN],
  );
});
