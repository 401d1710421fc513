/**
 * The static files, bundled into the module graph (no file-system access at
 * run time, and `deno compile` carries them). nginx serves the same files
 * from `static/` in the stack.
 *
 * @module
 */
import appJs from "../static/app.js" with { type: "text" };
import styleCss from "../static/style.css" with { type: "text" };
import robotsTxt from "../static/robots.txt" with { type: "text" };
import favicon from "../static/favicon.ico" with { type: "bytes" };

/** One static file as served. */
export interface StaticFile {
  /** The file's content. */
  body: string | Uint8Array<ArrayBuffer>;
  /** Its Content-Type, charset included. */
  type: string;
  /** Its Cache-Control, which replaces the API's `no-store`. */
  cacheControl: string;
}

// Script and style are linked with `?v=<hash of the content>` (assetUrl), so
// they may be cached long: a changed file is a new URL.
const VERSIONED = "public, max-age=31536000, immutable";
const DAILY = "public, max-age=86400";

/** The static files by URL path. */
export const STATIC_FILES: ReadonlyMap<string, StaticFile> = new Map([
  ["/static/app.js", {
    body: appJs,
    type: "text/javascript; charset=utf-8",
    cacheControl: VERSIONED,
  }],
  ["/static/style.css", {
    body: styleCss,
    type: "text/css; charset=utf-8",
    cacheControl: VERSIONED,
  }],
  ["/robots.txt", {
    body: robotsTxt,
    type: "text/plain; charset=utf-8",
    cacheControl: DAILY,
  }],
  ["/favicon.ico", {
    body: favicon as Uint8Array<ArrayBuffer>,
    type: "image/x-icon",
    cacheControl: DAILY,
  }],
]);

/** A file's content as bytes. */
export function bytesOf(file: StaticFile): Uint8Array<ArrayBuffer> {
  return typeof file.body === "string"
    ? new TextEncoder().encode(file.body)
    : file.body;
}

// FNV-1a (32 bits) of a file's bytes: a fingerprint, not a defence.
function contentHash(file: StaticFile): number {
  let hash = 0x811c9dc5;
  for (const byte of bytesOf(file)) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * An instant derived from a file's content (FNV-1a, as seconds after
 * 2020-01-01): the stack stamps each file with it, so nginx's ETag and
 * Last-Modified are the same on every replica and after every restart, and
 * change when the content does.
 */
export function contentTime(file: StaticFile): Date {
  return new Date(
    Date.UTC(2020, 0, 1) + (contentHash(file) % 157_680_000) * 1000,
  );
}

/**
 * The URL a page links a static file by: its path and `?v=` its content's
 * hash, so that a changed file is a new URL however long the old one is
 * cached (`immutable`), on every replica alike. Either door serves the file
 * at its path whatever the query.
 */
export function assetUrl(path: string): string {
  const file = STATIC_FILES.get(path);
  if (!file) throw new Error(`No static file ${path}`);
  return `${path}?v=${contentHash(file).toString(16).padStart(8, "0")}`;
}
