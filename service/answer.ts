/**
 * How the app answers: one small helper per kind of answer, each adding the
 * headers every answer carries.
 *
 * The headers are set here, where each answer is made: a middleware that
 * adds them after `await next()` costs far more per request.
 *
 * @module
 */
import { COMMON_HEADERS } from "./common_headers.ts";
import type { StaticFile } from "./static_files.ts";

export type { StaticFile };

/** Request ids taken from the caller must match this (nginx uses the same). */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Extra headers of one answer; they replace common ones of the same name. */
export type ExtraHeaders = Record<string, string>;

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";
const encoder = new TextEncoder();

/** What the helpers read of a request's context (Hono's `Context` fits). */
export interface RequestContext {
  /** The request. */
  req: {
    /** Its method. */
    method: string;
    /** The request as received. */
    raw: Request;
    /** One header's value. */
    header(name: string): string | undefined;
  };
  /** Deno.serve's connection info, when served. */
  env: unknown;
}

/**
 * Whether this request came through the stack's nginx: a worker's Unix
 * socket is reached only by it, and it overwrites X-Real-IP and adds the
 * common headers and X-Request-Id to every answer (each header a worker sets
 * costs it ~2 µs of CPU per request).
 */
export function behindStackNginx(c: RequestContext): boolean {
  const info = c.env as Deno.ServeHandlerInfo | undefined;
  return info?.remoteAddr?.transport === "unix";
}

// The id of each request once it has been decided.
const requestIds = new WeakMap<Request, string>();

/**
 * The caller's X-Request-Id when it is sane, else a new one; the same for
 * the answer and any log line about the request.
 */
export function requestIdOf(c: RequestContext): string {
  let id = requestIds.get(c.req.raw);
  if (id === undefined) {
    const given = c.req.header("x-request-id");
    id = given !== undefined && REQUEST_ID_PATTERN.test(given)
      ? given
      : crypto.randomUUID();
    requestIds.set(c.req.raw, id);
  }
  return id;
}

/** Any answer: status, content type, body and extra headers. */
export function send(
  c: RequestContext,
  status: number,
  type: string | null,
  body: string | Uint8Array<ArrayBuffer> | null,
  extra?: ExtraHeaders,
): Response {
  const headers: ExtraHeaders = behindStackNginx(c)
    ? {}
    : { ...COMMON_HEADERS, "x-request-id": requestIdOf(c) };
  if (type !== null) headers["content-type"] = type;
  if (extra) Object.assign(headers, extra);
  // Hono answers HEAD with GET's headers and no body, and the runtime then
  // says `content-length: 0`; RFC 9110 §8.6 wants GET's length.
  if (body !== null && c.req.method === "HEAD") {
    const length = typeof body === "string"
      ? encoder.encode(body).byteLength
      : body.byteLength;
    headers["content-length"] = String(length);
  }
  return new Response(body, { status, headers });
}

/** A 200 (or `status`) with a JSON body already serialised. */
export function json(
  c: RequestContext,
  body: string,
  extra?: ExtraHeaders,
): Response {
  return send(c, 200, JSON_TYPE, body, extra);
}

/** A 200 with a line of plain text. */
export function text(
  c: RequestContext,
  line: string,
  extra?: ExtraHeaders,
): Response {
  return send(c, 200, TEXT_TYPE, line + "\n", extra);
}

/** A 200 with an HTML page. */
export function html(
  c: RequestContext,
  page: string,
  extra?: ExtraHeaders,
): Response {
  return send(c, 200, HTML_TYPE, page, extra);
}

/** A static file, with its own caching. */
export function staticFile(c: RequestContext, file: StaticFile): Response {
  return send(c, 200, file.type, file.body, {
    "cache-control": file.cacheControl,
  });
}

/** A 204: nothing but headers. */
export function noContent(c: RequestContext, extra?: ExtraHeaders): Response {
  return send(c, 204, null, null, extra);
}

/**
 * An error as `{"error": message}`. The message is fixed text: nothing a
 * client sent is ever echoed back.
 */
export function problem(
  c: RequestContext,
  status: number,
  message: string,
  extra?: ExtraHeaders,
): Response {
  return send(
    c,
    status,
    JSON_TYPE,
    JSON.stringify({ error: message }) + "\n",
    extra,
  );
}
