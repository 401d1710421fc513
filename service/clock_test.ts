// The clock's state from raw adjtimex readings, and the supervisor's feed
// of them as the worker reads it, with fake readings, streams and clocks.
import assert from "node:assert/strict";
import {
  clockChange,
  type ClockState,
  decodeTimex,
  formatClockLine,
  readClockLines,
  type Timex,
  UNKNOWN_CLOCK,
} from "./clock.ts";

// What these machines' kernels say: no daemon disciplines the clock.
const MEASURED: Timex = {
  state: 5,
  status: 0x40,
  maxerror: 16_000_000,
  esterror: 16_000_000,
  tai: 0,
};
// chrony keeping it: PLL and nanosecond mode, 4 ms bound, TAI known.
const SYNCED: Timex = {
  state: 0,
  status: 0x2001,
  maxerror: 4000,
  esterror: 150,
  tai: 37,
};

Deno.test("an unsynchronised kernel clock decodes as not synchronised, leap unknown, 16 s bound", () => {
  assert.deepEqual(decodeTimex(MEASURED), {
    synchronized: false,
    max_error_ms: 16000,
    est_error_ms: 16000,
    leap: "unknown",
    tai_offset_s: null,
    source: "kernel",
  });
});

Deno.test("a synchronised kernel clock decodes with its bounds in ms and TAI − UTC", () => {
  assert.deepEqual(decodeTimex(SYNCED), {
    synchronized: true,
    max_error_ms: 4,
    est_error_ms: 0.15,
    leap: "none",
    tai_offset_s: 37,
    source: "kernel",
  });
  // STA_NANO changes only offset's unit: the bounds stay microseconds.
  assert.deepEqual(
    decodeTimex({ ...SYNCED, status: 0x0001 }),
    decodeTimex(SYNCED),
  );
  // TAI unknown to the kernel (0) is null, not 0.
  assert.equal(decodeTimex({ ...SYNCED, tai: 0 }).tai_offset_s, null);
});

Deno.test("every state and flag combination decodes as the kernel means it", () => {
  const flags = [0x10, 0x20, 0x40, 0x2000]; // INS, DEL, UNSYNC, NANO
  for (let state = 0; state <= 5; state++) {
    for (let mask = 0; mask < 16; mask++) {
      const status = flags.reduce((s, f, i) => mask & (1 << i) ? s | f : s, 1);
      const got = decodeTimex({ ...SYNCED, state, status });
      const what = `state ${state} status 0x${status.toString(16)}`;
      const unsync = state === 5 || (status & 0x40) !== 0;
      assert.equal(got.synchronized, !unsync, what);
      assert.equal(got.max_error_ms, 4, what);
      assert.equal(got.est_error_ms, 0.15, what);
      assert.equal(got.source, "kernel", what);
      // TIME_OK: the bits armed take effect next second (INS first);
      // otherwise the state says: INS, DEL, OOP (the inserted second
      // itself), WAIT (one just done).
      const fromBits = status & 0x10
        ? "insert"
        : status & 0x20
        ? "delete"
        : "none";
      const expected = unsync
        ? "unknown"
        : [fromBits, "insert", "delete", "insert", "none"][state];
      assert.equal(got.leap, expected, what);
    }
  }
});

Deno.test("a maximum error of 16 s (NTP_PHASE_LIMIT) is unsynchronised whatever the bits say", () => {
  const limit = decodeTimex({ ...SYNCED, maxerror: 16_000_000 });
  assert.equal(limit.synchronized, false);
  assert.equal(limit.leap, "unknown");
  assert.equal(
    decodeTimex({ ...SYNCED, maxerror: 15_999_999 }).synchronized,
    true,
  );
});

Deno.test("a state adjtimex never returns vouches for nothing", () => {
  for (const state of [-1, 6, 1.5, NaN]) {
    assert.deepEqual(decodeTimex({ ...SYNCED, state }), UNKNOWN_CLOCK);
  }
});

/** A stream of `chunks`, then its end. */
function streamOf(...chunks: (string | Uint8Array)[]) {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) {
        controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      }
      controller.close();
    },
  });
}

/** The feed after reading all of `chunks`, its clock at `now`. */
async function feedOf(now: () => number, ...chunks: (string | Uint8Array)[]) {
  const feed = readClockLines(streamOf(...chunks), now);
  await feed.closed;
  return feed.current();
}

const AT = 1_765_542_896_000;

Deno.test("the feed's last reading is the state, its maximum error grown 0.5 ms a second", async () => {
  const lines = formatClockLine(MEASURED, AT - 5000) +
    formatClockLine(SYNCED, AT);
  assert.deepEqual(await feedOf(() => AT, lines), decodeTimex(SYNCED));
  const later = await feedOf(() => AT + 2000, lines);
  assert.equal(later.max_error_ms, 5, "4 ms plus 2 s × 0.5 ms");
  assert.equal(later.est_error_ms, 0.15);
  // The kernel's bound stops at 16 s; so does the grown one.
  const unsynced = await feedOf(
    () => AT + 2000,
    formatClockLine(MEASURED, AT),
  );
  assert.equal(unsynced.max_error_ms, 16000);
  // A reading from just ahead (the clock stepped back) does not shrink it.
  assert.equal((await feedOf(() => AT - 500, lines)).max_error_ms, 4);
});

Deno.test("the feed is unknown with nothing yet, a failed read, a stale reading or an unreadable line", async () => {
  const cases: [string, () => number, string][] = [
    ["nothing yet", () => AT, ""],
    ["no whole line yet", () => AT, formatClockLine(SYNCED, AT).trimEnd()],
    ["a failed read", () => AT, formatClockLine(null, AT)],
    ["over 3 s old", () => AT + 3001, formatClockLine(SYNCED, AT)],
    ["from far ahead", () => AT - 3001, formatClockLine(SYNCED, AT)],
    ["not JSON", () => AT, formatClockLine(SYNCED, AT) + "{nope\n"],
    ["no time", () => AT, `{"timex":${JSON.stringify(SYNCED)}}\n`],
    [
      "a field missing",
      () => AT,
      `{"timex":{"state":0,"status":1},"at":${AT}}\n`,
    ],
    [
      "a field not a whole number",
      () => AT,
      JSON.stringify({ timex: { ...SYNCED, maxerror: "4000" }, at: AT }) + "\n",
    ],
  ];
  for (const [what, now, text] of cases) {
    assert.deepEqual(await feedOf(now, text), UNKNOWN_CLOCK, what);
  }
  // Exactly 3 s old still counts.
  assert.equal(
    (await feedOf(() => AT + 3000, formatClockLine(SYNCED, AT))).synchronized,
    true,
  );
});

Deno.test("lines split anywhere across chunks are read whole", async () => {
  const bytes = new TextEncoder().encode(
    formatClockLine(MEASURED, AT) + formatClockLine(SYNCED, AT),
  );
  const single = Array.from(bytes, (b) => Uint8Array.of(b));
  assert.deepEqual(await feedOf(() => AT, ...single), decodeTimex(SYNCED));
});

Deno.test("a line over 1 KiB is skipped, never held, and the next one is read", async () => {
  const good = formatClockLine(SYNCED, AT);
  const long = `{"timex":null,"at":${AT},"pad":"${"x".repeat(1100)}"}\n`;
  // The long line alone is dropped: the reading before it stands.
  assert.deepEqual(await feedOf(() => AT, good, long), decodeTimex(SYNCED));
  // Arriving in pieces, with no newline for 64 MiB, then a good line.
  const piece = new Uint8Array(1 << 20).fill(0x78);
  const pieces = Array.from({ length: 64 }, () => piece);
  assert.deepEqual(
    await feedOf(() => AT, formatClockLine(null, AT), ...pieces, "\n", good),
    decodeTimex(SYNCED),
  );
  // 1024 bytes is still a line.
  const json = JSON.stringify({ timex: SYNCED, at: AT });
  const padded = json.slice(0, -1) +
    `,"p":"${"y".repeat(1017 - json.length)}"}`;
  assert.equal(new TextEncoder().encode(padded).length, 1024);
  assert.deepEqual(
    await feedOf(() => AT, formatClockLine(null, AT), padded + "\n"),
    decodeTimex(SYNCED),
  );
});

Deno.test("a failing stream ends the feed, which then goes stale", async () => {
  let now = AT;
  let pulls = 0;
  const feed = readClockLines(
    new ReadableStream({
      pull(c) {
        if (pulls++ > 0) return c.error(new Error("gone"));
        c.enqueue(new TextEncoder().encode(formatClockLine(SYNCED, AT)));
      },
    }),
    () => now,
  );
  await feed.closed;
  assert.equal(feed.current().synchronized, true);
  now += 3001;
  assert.deepEqual(feed.current(), UNKNOWN_CLOCK);
});

Deno.test("formatClockLine writes one line of exactly the five fields", () => {
  const extra = { ...SYNCED, offset: 12, time: {} } as Timex;
  assert.equal(
    formatClockLine(extra, AT),
    `{"timex":{"state":0,"status":8193,"maxerror":4000,"esterror":150,"tai":37},"at":${AT}}\n`,
  );
  assert.equal(formatClockLine(null, AT), `{"timex":null,"at":${AT}}\n`);
});

Deno.test("a change worth a log line: synchronised or not, known or not, a leap armed", () => {
  const synced = decodeTimex(SYNCED);
  const unsynced = decodeTimex(MEASURED);
  const armed = decodeTimex({ ...SYNCED, state: 1, status: 0x11 });
  const cases: [ClockState, ClockState, string | undefined][] = [
    [synced, unsynced, "clock unsynchronised"],
    [unsynced, synced, "clock synchronised"],
    [synced, UNKNOWN_CLOCK, "clock state unknown"],
    [synced, armed, "leap second armed: insert"],
    [armed, synced, "no leap second armed"],
    [synced, { ...synced, max_error_ms: 9 }, undefined],
    [UNKNOWN_CLOCK, UNKNOWN_CLOCK, undefined],
  ];
  for (const [before, after, message] of cases) {
    assert.equal(clockChange(before, after), message);
  }
});
