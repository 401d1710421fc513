/**
 * The headers every API answer carries, written in one place and set by
 * whoever answers the client: the app when it serves TCP itself, the stack's
 * nginx when it is in front of the workers (it adds X-Request-Id too).
 *
 * @module
 */

/**
 * Set on every API answer, errors included. Lowercase, like every header the
 * app sets: an answer's own value (a static file's `cache-control`) must
 * replace these, not be sent next to them.
 */
export const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "X-Request-Id",
  "x-content-type-options": "nosniff",
};
