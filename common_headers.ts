/**
 * The headers every API answer carries, written in one place and set by
 * whoever answers the client: the app when it serves TCP itself, the stack's
 * nginx when it is in front of the workers (it adds X-Request-Id too).
 *
 * @module
 */

/** Set on every API answer, errors included. */
export const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "Cache-Control": "no-store",
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers": "X-Request-Id",
  "X-Content-Type-Options": "nosniff",
};
