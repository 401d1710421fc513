/**
 * What the server knows about its own clock, as NTP publishes it: whether
 * a time daemon keeps it synchronised, its error bound, the leap second
 * armed, TAI − UTC. The kernel keeps these (`adjtimex(2)` with modes 0, a
 * read). The stack's supervisor reads them once a second and writes one
 * line to each worker's standard input ({@linkcode formatClockLine}); the
 * worker reads the lines ({@linkcode readClockLines}) and `/time` answers
 * with {@linkcode ClockFeed.current}. What nothing vouches for is unknown.
 *
 * @module
 */

/** NTP's leap indicator, in words (`unknown` is LI = 3, unsynchronised). */
export type Leap = "none" | "insert" | "delete" | "unknown";

/** The server clock's state, as `/time` answers it in `clock`. */
export type ClockState = {
  /** Whether a time daemon keeps the clock synchronised; null: unknown. */
  synchronized: boolean | null;
  /** The kernel's bound on the clock's error (its `maxerror`), ms. */
  max_error_ms: number | null;
  /** The kernel's estimate of the clock's error (its `esterror`), ms. */
  est_error_ms: number | null;
  /** A leap second armed for the end of this UTC day. */
  leap: Leap;
  /** TAI − UTC in seconds, when a daemon has told the kernel. */
  tai_offset_s: number | null;
  /** Where this came from: `kernel`, or null when nothing vouches for it. */
  source: "kernel" | null;
};

/** Nothing vouches for the clock: every field null, the leap unknown. */
export const UNKNOWN_CLOCK: Readonly<ClockState> = Object.freeze({
  synchronized: null,
  max_error_ms: null,
  est_error_ms: null,
  leap: "unknown",
  tai_offset_s: null,
  source: null,
});

/**
 * What `adjtimex(2)` with modes 0 gives: its return value (`state`) and
 * four fields of `struct timex`. `maxerror` and `esterror` are
 * microseconds whatever `STA_NANO` says (it only changes `offset`'s unit).
 */
export interface Timex {
  /** The return value: TIME_OK 0 … TIME_ERROR 5. */
  state: number;
  /** The `STA_*` bits. */
  status: number;
  /** Maximum error, µs. */
  maxerror: number;
  /** Estimated error, µs. */
  esterror: number;
  /** TAI − UTC, s; 0 when no daemon set it. */
  tai: number;
}

// <sys/timex.h>: clock states and status bits.
const TIME_INS = 1;
const TIME_DEL = 2;
const TIME_OOP = 3;
const TIME_WAIT = 4;
const TIME_ERROR = 5;
const STA_INS = 0x10;
const STA_DEL = 0x20;
const STA_UNSYNC = 0x40;
/** At this maximum error (16 s, NTP_PHASE_LIMIT) the kernel gives up. */
const NTP_PHASE_LIMIT_US = 16_000_000;
/** The kernel adds this to `maxerror` each second nothing sets it. */
const MAXERROR_GROWTH_US_PER_S = 500;
/** A reading older than this vouches for nothing. */
export const CLOCK_STALE_MS = 3000;
/** A line from the supervisor longer than this is dropped, unread. */
export const MAX_CLOCK_LINE = 1024;

// The kernel's order: TIME_INS and TIME_OOP are an insertion (armed, then
// the leap second itself), TIME_WAIT one just done; in TIME_OK an armed
// bit takes effect at the next second, STA_INS first.
function leapOf(state: number, status: number): Leap {
  if (state === TIME_INS || state === TIME_OOP) return "insert";
  if (state === TIME_DEL) return "delete";
  if (state === TIME_WAIT) return "none";
  if (status & STA_INS) return "insert";
  if (status & STA_DEL) return "delete";
  return "none";
}

/** The state a raw `adjtimex` reading describes. */
export function decodeTimex(t: Timex): ClockState {
  if (!Number.isInteger(t.state) || t.state < 0 || t.state > TIME_ERROR) {
    return { ...UNKNOWN_CLOCK };
  }
  const synchronized = t.state !== TIME_ERROR &&
    (t.status & STA_UNSYNC) === 0 && t.maxerror < NTP_PHASE_LIMIT_US;
  return {
    synchronized,
    max_error_ms: t.maxerror / 1000,
    est_error_ms: t.esterror / 1000,
    leap: synchronized ? leapOf(t.state, t.status) : "unknown",
    tai_offset_s: t.tai > 0 ? t.tai : null,
    source: "kernel",
  };
}

/**
 * One line of the supervisor's feed: a reading (null when the call
 * failed) and when it was taken, ms since the epoch.
 */
export function formatClockLine(timex: Timex | null, at: number): string {
  const t = timex && {
    state: timex.state,
    status: timex.status,
    maxerror: timex.maxerror,
    esterror: timex.esterror,
    tai: timex.tai,
  };
  return `${JSON.stringify({ timex: t, at })}\n`;
}

const FIELDS = ["state", "status", "maxerror", "esterror", "tai"] as const;

// A line's reading, null for a failed read, undefined for anything else.
function parseClockLine(
  line: string,
): { timex: Timex | null; at: number } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { timex, at } = value as { timex?: unknown; at?: unknown };
  if (!Number.isFinite(at)) return undefined;
  if (timex === null) return { timex: null, at: at as number };
  if (typeof timex !== "object") return undefined;
  const t = timex as Record<string, unknown>;
  if (!FIELDS.every((f) => Number.isSafeInteger(t[f]))) return undefined;
  return { timex: t as unknown as Timex, at: at as number };
}

/** The worker's view of the supervisor's readings. */
export interface ClockFeed {
  /**
   * The clock's state now: the last reading, its maximum error grown as
   * the kernel grows it since; unknown when there is none, it failed, it
   * could not be read, or it is older than {@linkcode CLOCK_STALE_MS}.
   */
  current(): ClockState;
  /** Settles when the stream ends or fails. */
  closed: Promise<void>;
}

/**
 * Reads the supervisor's lines ({@linkcode formatClockLine}) from
 * `stream`, keeping only the last. A line over {@linkcode MAX_CLOCK_LINE}
 * bytes is skipped as it arrives, never held.
 */
export function readClockLines(
  stream: ReadableStream<Uint8Array>,
  now: () => number = Date.now,
): ClockFeed {
  let last: { timex: Timex | null; at: number } | undefined;
  const closed = splitLines(stream, (line) => {
    last = parseClockLine(line);
  });
  return {
    closed,
    current() {
      if (!last?.timex) return UNKNOWN_CLOCK;
      const age = now() - last.at;
      if (!(Math.abs(age) <= CLOCK_STALE_MS)) return UNKNOWN_CLOCK;
      const { maxerror } = last.timex;
      const grown = maxerror + Math.round(
        Math.max(age, 0) * MAXERROR_GROWTH_US_PER_S / 1000,
      );
      // The kernel stops at 16 s, and so does what it would have said.
      const limit = Math.max(maxerror, NTP_PHASE_LIMIT_US);
      return decodeTimex({ ...last.timex, maxerror: Math.min(grown, limit) });
    },
  };
}

// Calls `onLine` with each complete line of at most MAX_CLOCK_LINE bytes.
async function splitLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  const held = new Uint8Array(MAX_CLOCK_LINE);
  let length = 0;
  let skipping = false;
  try {
    for await (const chunk of stream) {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
        const part = chunk.subarray(start, nl);
        if (!skipping && length + part.length <= MAX_CLOCK_LINE) {
          held.set(part, length);
          onLine(decoder.decode(held.subarray(0, length + part.length)));
        }
        length = 0;
        skipping = false;
        start = nl + 1;
      }
      const rest = chunk.subarray(start);
      if (skipping || length + rest.length > MAX_CLOCK_LINE) {
        skipping = true;
        length = 0;
      } else {
        held.set(rest, length);
        length += rest.length;
      }
    }
  } catch {
    // The supervisor is gone: its last reading goes stale.
  }
}

/**
 * Whether the clock is synchronised with a maximum error of at most
 * `maxErrorMs` (CLOCK_MAX_ERROR_MS); unknown is not.
 */
export function clockWithin(state: ClockState, maxErrorMs: number): boolean {
  return state.synchronized === true && state.max_error_ms !== null &&
    state.max_error_ms <= maxErrorMs;
}

/**
 * What changed between two states, worth one `warn` line: synchronised or
 * not, known or not, a leap second armed or disarmed; undefined when
 * nothing did (the error bound moving is not news).
 */
export function clockChange(
  before: ClockState,
  after: ClockState,
): string | undefined {
  if (before.synchronized !== after.synchronized) {
    return after.synchronized === null
      ? "clock state unknown"
      : after.synchronized
      ? "clock synchronised"
      : "clock unsynchronised";
  }
  if (before.leap !== after.leap && after.leap !== "unknown") {
    return after.leap === "none"
      ? "no leap second armed"
      : `leap second armed: ${after.leap}`;
  }
  return undefined;
}
