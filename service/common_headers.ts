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
  // Date: pages elsewhere may read the server's clock.
  "access-control-expose-headers": "X-Request-Id, Date",
  "x-content-type-options": "nosniff",
};

/**
 * The methods every path allows, as `Allow` lists them. The app's 405s and
 * preflights and nginx's config (stack/nginx_config.ts) all read it here.
 */
export const ALLOWED_METHODS: readonly string[] = ["GET", "HEAD", "OPTIONS"];

/** {@linkcode ALLOWED_METHODS} as the `Allow` header's value. */
export const ALLOW: string = ALLOWED_METHODS.join(", ");

/** What a CORS preflight allows: the methods that are not a preflight. */
export const CORS_METHODS: string = ALLOWED_METHODS
  .filter((m) => m !== "OPTIONS").join(", ");

/** The extra headers of a CORS preflight's 204. */
export const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  "access-control-allow-methods": CORS_METHODS,
  "access-control-allow-headers": "*",
  "access-control-max-age": "86400",
};
