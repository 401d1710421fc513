/**
 * `GET /time`: the instant in UTC, optionally in one IANA time zone, and the
 * server's side of an NTP-style exchange (`t0` in, `t1` and `t2` out).
 *
 * Offsets and transitions are the runtime's (`Temporal`); which names are
 * zones, and which name a zone is answered by, the shipped tz database's
 * (`tz_names.ts`, the same release).
 *
 * @module
 */
import { canonicalZone } from "./tz_names.ts";

/** A clock in milliseconds since the epoch, with sub-millisecond precision. */
export type PreciseClock = () => number;

/**
 * A wall clock with sub-millisecond precision: the monotonic clock
 * (`performance.now()`) from an anchor, kept in step with the wall clock
 * (`Date.now()`). The monotonic clock alone does not follow the wall clock
 * when NTP steps or slews it after the process started, and a time service
 * must; `Date.now()` alone has whole milliseconds.
 */
export function anchoredClock(
  wall: () => number,
  monotonic: () => number,
  anchor: number = wall() - monotonic(),
): PreciseClock {
  return () => {
    const ms = wall();
    let t = anchor + monotonic();
    // `ms` is the true time rounded down, so t belongs in [ms, ms + 1):
    // move the anchor by the least that puts it there, which keeps the
    // precision and converges on the true offset.
    if (t < ms) {
      anchor += ms - t;
      t = ms;
    } else if (t >= ms + 1) {
      const over = t - (ms + 1) + 0.001;
      anchor -= over;
      t -= over;
    }
    return t;
  };
}

/**
 * The process's clock as `/time` reads it: `performance.timeOrigin +
 * performance.now()`, kept in step with `Date.now()` ({@linkcode anchoredClock}).
 */
export const preciseNow: PreciseClock = anchoredClock(
  Date.now,
  () => performance.now(),
  performance.timeOrigin,
);

/** What a `/time` request asked for, validated. */
export interface TimeQuery {
  /** The zone's primary name (`canonicalZone`). */
  tz?: string;
  /** The client's send time, ms since the epoch. */
  t0?: number;
}

/** The fields a zone adds to the answer. */
export interface ZoneFields {
  /** The zone's canonical IANA name. */
  tz: string;
  /** ISO 8601 local time with the zone's offset, three fractional digits. */
  local: string;
  /** `+01:00`, `-03:30`, `+05:45`. */
  utc_offset: string;
  /** Whether the zone observes daylight saving time at this instant. */
  dst: boolean;
}

/** A query that cannot be answered; its message never contains the input. */
export class TimeQueryError extends Error {
  /** Always `TimeQueryError`. */
  override name = "TimeQueryError";
}

// A plain decimal: no exponent, no hex, no "Infinity", not empty.
const DECIMAL = /^-?\d{1,16}(\.\d{1,9})?$/;

/** Validates `tz` and `t0` of a query; throws {@linkcode TimeQueryError}. */
export function parseTimeQuery(params: URLSearchParams): TimeQuery {
  const query: TimeQuery = {};
  const tz = params.get("tz");
  if (tz !== null) {
    query.tz = canonicalZone(tz);
    if (query.tz === undefined) {
      throw new TimeQueryError(
        "Unknown time zone: expected an IANA name such as Europe/Berlin",
      );
    }
  }
  const t0 = params.get("t0");
  if (t0 !== null) {
    const value = DECIMAL.test(t0) ? Number(t0) : NaN;
    if (!Number.isFinite(value)) {
      throw new TimeQueryError(
        "Invalid t0: expected the send time in milliseconds since the epoch",
      );
    }
    query.t0 = value;
  }
  return query;
}

/** The local time, offset and DST flag of zone `tz` at `epochMs`. */
export function zoneFields(epochMs: number, tz: string): ZoneFields {
  const zoned = Temporal.Instant.fromEpochMilliseconds(epochMs)
    .toZonedDateTimeISO(tz);
  // A zone's standard offset is the smaller of its January and July ones
  // (southern summers fall in January); more than that is daylight saving.
  const offsetIn = (month: number) =>
    zoned.with({ month, day: 1 }).offsetNanoseconds;
  const standard = Math.min(offsetIn(1), offsetIn(7));
  return {
    tz: zoned.timeZoneId,
    local: zoned.toString({
      fractionalSecondDigits: 3,
      timeZoneName: "never",
    }),
    utc_offset: zoned.offset,
    dst: zoned.offsetNanoseconds > standard,
  };
}

/**
 * The `/time` answer's fields in order: `utc`, `unix`, `unix_ms`, then the
 * zone's and the exchange's. `t1` is when the request reached the handler;
 * `t2` is read from `clock` last, just before the body is written.
 */
export function timeFields(
  query: TimeQuery,
  t1: number,
  utc: (ms: number) => string,
  clock: PreciseClock = preciseNow,
): Record<string, unknown> {
  const ms = Math.floor(t1);
  const fields: Record<string, unknown> = {
    utc: utc(ms),
    unix: Math.floor(ms / 1000),
    unix_ms: ms,
  };
  if (query.tz !== undefined) Object.assign(fields, zoneFields(ms, query.tz));
  if (query.t0 !== undefined) {
    fields.t0 = query.t0;
    fields.t1 = t1;
    fields.t2 = clock();
  }
  return fields;
}
