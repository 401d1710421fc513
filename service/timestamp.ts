/**
 * The one timestamp format of the server code: UTC ISO 8601 with exactly
 * three fractional digits and a `+00:00` offset. The API's answers and the
 * log lines both use it.
 *
 * @module
 */

/**
 * Formats an instant, e.g. `2025-12-12T12:34:56.789+00:00`.
 *
 * @example
 * ```ts
 * import { formatTimestamp } from "./timestamp.ts";
 * formatTimestamp(new Date(0)); // "1970-01-01T00:00:00.000+00:00"
 * ```
 */
export function formatTimestamp(date: Date): string {
  return date.toISOString().slice(0, -1) + "+00:00";
}

// Under load many requests share a millisecond: format it once.
let lastMs = -1;
let lastText = "";

/** The current instant, in milliseconds and formatted. */
export function now(): { ms: number; text: string } {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastText = formatTimestamp(new Date(ms));
    lastMs = ms;
  }
  return { ms, text: lastText };
}
