/**
 * What a request must be for the API to answer it, at either door: the
 * service alone checks it in the app (`app.ts`), the stack's nginx with the
 * same patterns (`stack/nginx_config.ts` renders them), so both refuse the
 * same requests with the same JSON errors.
 *
 * The patterns are written for both JavaScript and nginx's PCRE: ASCII
 * classes only, no flags, no lookaround.
 *
 * @module
 */

/**
 * A Host header: an IP literal in brackets or a registered name (RFC 3986,
 * which covers IPv4), then an optional port. Not empty: nginx refuses an
 * empty Host before any configuration applies, so the service does too.
 * (No Host at all is HTTP/1.0 or h2c: allowed; docs/http.md.)
 */
export const HOST_PATTERN =
  "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(:[0-9]*)?$";

/**
 * The most `Accept` may hold, in bytes: a browser sends ~150. Longer is a
 * JSON 431, so that negotiation's work per request stays bounded.
 */
export const ACCEPT_LIMIT = 1024;

/**
 * A Content-Length that announces no body (`0`, `00`, …); any other, or a
 * Transfer-Encoding, announces one.
 */
export const NO_BODY_LENGTH = "^0*$";

const host = new RegExp(HOST_PATTERN);
const noBody = new RegExp(NO_BODY_LENGTH);

/** Why a request is refused before any route sees it, or undefined. */
export interface Refusal {
  /** The status: 400, 413 or 431. */
  status: number;
  /** The fixed message (nothing the client sent). */
  message: string;
}

/** The headers the rules read. */
export interface RuleHeaders {
  /** One header's value, or undefined when absent. */
  get(name: string): string | null | undefined;
}

/** The refusals, one each, as both doors send them. */
export const REFUSALS = {
  host: { status: 400, message: "Invalid Host header" },
  body: {
    status: 413,
    message: "Request body too large: the API takes no body",
  },
  accept: { status: 431, message: "Request header fields too large" },
} as const satisfies Record<string, Refusal>;

/**
 * Checks a request's headers against the rules: a Host that is a host, no
 * body announced (the API reads none: the answer does not wait for it),
 * an `Accept` of at most {@linkcode ACCEPT_LIMIT} bytes.
 */
export function refusalOf(headers: RuleHeaders): Refusal | undefined {
  const hostValue = headers.get("host");
  if (hostValue != null && !host.test(hostValue)) return REFUSALS.host;
  const length = headers.get("content-length");
  if (
    (length != null && !noBody.test(length)) ||
    headers.get("transfer-encoding") != null
  ) {
    return REFUSALS.body;
  }
  const accept = headers.get("accept");
  if (accept != null && accept.length > ACCEPT_LIMIT) return REFUSALS.accept;
  return undefined;
}
