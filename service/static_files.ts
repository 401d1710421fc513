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
  /** Its Content-Type. */
  type: string;
  /** Its Cache-Control. */
  cacheControl: string;
}

// Script and style are linked with `?v=<version>`, so they may be cached long.
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
