import assert from "node:assert/strict";
import {
  anchoredClock,
  parseTimeQuery,
  timeFields,
  TimeQueryError,
  zoneFields,
} from "./time.ts";

const at = (iso: string) => Date.parse(iso);
const utc = (ms: number) => new Date(ms).toISOString().slice(0, -1) + "+00:00";

Deno.test("zones: local time, offset and DST, in winter and in summer", () => {
  const table: [string, string, string, string, boolean][] = [
    // zone, instant (UTC), local, offset, dst
    [
      "Europe/Berlin",
      "2025-12-12T12:34:56.789Z",
      "2025-12-12T13:34:56.789+01:00",
      "+01:00",
      false,
    ],
    [
      "Europe/Berlin",
      "2025-07-01T12:00:00.000Z",
      "2025-07-01T14:00:00.000+02:00",
      "+02:00",
      true,
    ],
    // Half-hour offsets, with and without DST.
    [
      "America/St_Johns",
      "2025-01-15T12:00:00.000Z",
      "2025-01-15T08:30:00.000-03:30",
      "-03:30",
      false,
    ],
    [
      "America/St_Johns",
      "2025-07-15T12:00:00.000Z",
      "2025-07-15T09:30:00.000-02:30",
      "-02:30",
      true,
    ],
    [
      "Asia/Kolkata",
      "2025-07-15T12:00:00.000Z",
      "2025-07-15T17:30:00.000+05:30",
      "+05:30",
      false,
    ],
    // A 45-minute offset.
    [
      "Asia/Kathmandu",
      "2025-12-12T12:34:56.789Z",
      "2025-12-12T18:19:56.789+05:45",
      "+05:45",
      false,
    ],
    // The southern summer is in January.
    [
      "Australia/Sydney",
      "2025-01-15T00:00:00.000Z",
      "2025-01-15T11:00:00.000+11:00",
      "+11:00",
      true,
    ],
    [
      "Australia/Sydney",
      "2025-07-15T00:00:00.000Z",
      "2025-07-15T10:00:00.000+10:00",
      "+10:00",
      false,
    ],
    [
      "UTC",
      "2025-07-15T00:00:00.000Z",
      "2025-07-15T00:00:00.000+00:00",
      "+00:00",
      false,
    ],
  ];
  for (const [tz, instant, local, offset, dst] of table) {
    assert.deepEqual(
      zoneFields(at(instant), tz),
      { tz, local, utc_offset: offset, dst },
      `${tz} at ${instant}`,
    );
  }
});

Deno.test("zones: any name of a zone, in any case, answers the zone's primary name", () => {
  const table: [string, string][] = [
    ["europe/berlin", "Europe/Berlin"],
    ["Asia/Kathmandu", "Asia/Kathmandu"],
    ["Asia/Calcutta", "Asia/Kolkata"],
    ["asia/calcutta", "Asia/Kolkata"],
    ["Europe/Kiev", "Europe/Kyiv"],
    ["US/Pacific", "America/Los_Angeles"],
    ["Asia/Saigon", "Asia/Ho_Chi_Minh"],
    ["EST5EDT", "America/New_York"],
    ["Iceland", "Atlantic/Reykjavik"],
    ["Etc/UTC", "UTC"],
    ["Zulu", "UTC"],
    ["GMT", "UTC"],
    // Another country with the same clocks since 1970 stays itself.
    ["Europe/Amsterdam", "Europe/Amsterdam"],
  ];
  for (const [asked, answered] of table) {
    const { tz } = parseTimeQuery(new URLSearchParams({ tz: asked }));
    assert.equal(tz, answered, asked);
    assert.equal(zoneFields(0, tz!).tz, answered, asked);
  }
});

Deno.test("unknown or malformed zones are refused without echoing them", () => {
  for (
    const tz of [
      "Mars/Olympus_Mons",
      "",
      "<script>alert(1)</script>",
      "Europe/Berlin\n",
      "../../etc/passwd",
      "x".repeat(200),
      "+01:00",
    ]
  ) {
    assert.throws(
      () => parseTimeQuery(new URLSearchParams({ tz })),
      (err: unknown) =>
        err instanceof TimeQueryError && !err.message.includes(tz || "\0") &&
        /Unknown time zone/.test(err.message),
      JSON.stringify(tz),
    );
  }
});

Deno.test("t0 must be a finite decimal number of milliseconds", () => {
  assert.deepEqual(
    parseTimeQuery(new URLSearchParams({ t0: "1765542896789.125" })),
    { t0: 1765542896789.125 },
  );
  assert.deepEqual(parseTimeQuery(new URLSearchParams({ t0: "0" })), {
    t0: 0,
  });
  for (
    const t0 of ["", "abc", "NaN", "Infinity", "-Infinity", "1e3", "0x10", " 1"]
  ) {
    assert.throws(
      () => parseTimeQuery(new URLSearchParams({ t0 })),
      TimeQueryError,
      JSON.stringify(t0),
    );
  }
});

Deno.test("the exchange gives a client the server's offset and the delay", () => {
  // Scripted: the server's clock is 5 s ahead of the client's, the network
  // takes 10 ms each way and the server 2 ms to answer.
  const t0 = 1_000_000.25;
  const t1 = t0 + 10 + 5000;
  const t2 = t1 + 2;
  const t3 = t0 + 10 + 2 + 10;
  const fields = timeFields({ t0 }, t1, utc, () => t2);
  assert.deepEqual(fields, {
    utc: utc(1_005_010),
    unix: 1005,
    unix_ms: 1_005_010,
    t0,
    t1,
    t2,
  });
  const f = fields as { t0: number; t1: number; t2: number };
  const offset = ((f.t1 - f.t0) + (f.t2 - t3)) / 2;
  const delay = (t3 - f.t0) - (f.t2 - f.t1);
  assert.equal(offset, 5000);
  assert.equal(delay, 20);
});

Deno.test("without t0 the answer has no exchange fields; tz adds the zone's", () => {
  const ms = at("2025-12-12T12:34:56.789Z");
  assert.deepEqual(Object.keys(timeFields({}, ms + 0.4, utc)), [
    "utc",
    "unix",
    "unix_ms",
  ]);
  assert.deepEqual(timeFields({ tz: "Asia/Kathmandu" }, ms, utc), {
    utc: "2025-12-12T12:34:56.789+00:00",
    unix: 1765542896,
    unix_ms: ms,
    tz: "Asia/Kathmandu",
    local: "2025-12-12T18:19:56.789+05:45",
    utc_offset: "+05:45",
    dst: false,
  });
});

Deno.test("the precise clock follows the wall clock when it is stepped, keeping sub-ms precision", () => {
  // True time in ms; the wall clock shows it rounded down and may be
  // stepped, the monotonic one runs on from the process's start.
  let now = 1_000_000.25;
  let step = 0;
  const clock = anchoredClock(
    () => Math.floor(now + step),
    () => now - 1_000_000,
    1_000_000,
  );
  assert.equal(clock(), 1_000_000.25, "in step: the monotonic reading");
  now += 10.5;
  assert.equal(clock(), 1_000_010.75);
  // NTP steps the wall clock 5 s ahead.
  step = 5000;
  now += 0.1;
  const stepped = clock();
  assert.ok(
    stepped >= 1_005_010 && stepped < 1_005_011,
    `follows the step: ${stepped}`,
  );
  // And back to 2 s behind the true time.
  step = -2000;
  now += 0.1;
  const back = clock();
  assert.ok(back >= 998_010 && back < 998_011, `follows back: ${back}`);
  // In step again, readings keep their sub-millisecond part.
  now += 3.3;
  const later = clock();
  assert.ok(later - back > 3.2 && later - back < 3.4, `${back} -> ${later}`);
  assert.notEqual(later % 1, 0);
});
