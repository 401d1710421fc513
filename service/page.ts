/**
 * The HTML page a browser gets at `/`: rendered per request so the address
 * and time show without JavaScript; script and style are static files.
 * `hono/html` escapes every value put into it.
 *
 * @module
 */
import { html } from "hono/html";

/** What one page shows. */
export interface PageData {
  /** The caller's address. */
  ip: string;
  /** The server's time, formatted. */
  timestamp: string;
  /** The service's version, which versions the script and style URLs. */
  version: string;
}

/** The page's policy: its own script and style only, nothing inline. */
export const PAGE_CSP: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Renders the page for one request. */
export function renderPage({ ip, timestamp, version }: PageData): string {
  const v = encodeURIComponent(version);
  return String(html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>Your IP address is ${ip}</title>
        <link rel="icon" href="/favicon.ico">
        <link rel="stylesheet" href="/static/style.css?v=${v}">
        <script src="/static/app.js?v=${v}" defer></script>
      </head>
      <body>
        <main>
          <h1>Your IP address</h1>
          <p class="ip"><output id="ip">${ip}</output>
    <button id="copy" type="button" hidden>Copy</button></p>
          <h2>Server time (UTC)</h2>
          <p
            class="time"><time id="time" datetime="${timestamp}">${timestamp}</time></p>
          <p id="offset" class="offset" hidden>Measuring your clock…</p>
          <nav>
            <a href="/?format=json">JSON</a>
            <a href="/ip">/ip</a>
            <a href="/timestamp">/timestamp</a>
            <a href="/openapi.json">OpenAPI</a>
          </nav>
        </main>
      </body>
    </html>
  `);
}
