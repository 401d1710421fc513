/**
 * The HTML page a browser gets at `/`: rendered per request so the address
 * and time show without JavaScript; script and style are static files.
 * `hono/html` escapes every value put into it.
 *
 * @module
 */
import { html } from "hono/html";
import { type ClockState, UNKNOWN_CLOCK } from "./clock.ts";
import type { FamilyOrigins } from "./config.ts";
import { assetUrl } from "./static_files.ts";

const SCRIPT_URL = assetUrl("/static/app.js");
const STYLE_URL = assetUrl("/static/style.css");

/** What one page shows. */
export interface PageData {
  /** The caller's address. */
  ip: string;
  /** The server's time, formatted. */
  timestamp: string;
  /** Hosts reached over one family only; the script asks each for `/ip`. */
  origins?: FamilyOrigins;
  /** The caller's country (ISO 3166-1 alpha-2), when known. */
  country?: string;
  /** The server clock's state; the script updates the line it makes. */
  clock?: ClockState;
}

/**
 * The page's policy: its own script and style only, nothing inline; it may
 * connect to itself and to exactly the family origins that are set.
 */
export function pageCsp(origins: FamilyOrigins): string {
  const connect = ["'self'", origins.ipv4, origins.ipv6].filter(Boolean);
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src ${connect.join(" ")}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

// Filled in by the script, which asks each origin for `/ip?format=json`.
function familiesSection({ ipv4, ipv6 }: FamilyOrigins) {
  if (!ipv4 && !ipv6) return "";
  const row = (label: string, id: string, origin?: string) =>
    origin
      ? html`
        <dt>${label}</dt>
        <dd><output id="${id}" data-origin="${origin}">…</output></dd>
      `
      : "";
  return html`
    <section id="families" hidden>
      <h2>Your address over each family</h2>
      <dl class="families">${row("IPv4", "ipv4", ipv4)}${row(
        "IPv6",
        "ipv6",
        ipv6,
      )}</dl>
    </section>
  `;
}

/** A bound, rounded up (never more certain than it is): `4 ms`, `16 s`. */
export function plusMinus(ms: number): string {
  return ms >= 1000 ? `${Math.ceil(ms / 100) / 10} s` : `${Math.ceil(ms)} ms`;
}

/**
 * The line under the server's time: what the server vouches for. The
 * script (static/app.js) writes the same words from `/time`'s `clock`.
 */
export function clockSentence(clock: ClockState = UNKNOWN_CLOCK): string {
  const max = clock.max_error_ms;
  if (clock.synchronized === null || max === null) {
    return "The server cannot vouch for its clock.";
  }
  return clock.synchronized
    ? `Server clock synchronised, ± ${plusMinus(max)}.`
    : `The server's clock is not synchronised: your offset is only good to ± ${
      plusMinus(max)
    }.`;
}

/** Renders the page for one request. */
export function renderPage(
  { ip, timestamp, origins = {}, country, clock }: PageData,
): string {
  return String(html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>Your IP address is ${ip}</title>
        <link rel="icon" href="/favicon.ico">
        <link rel="stylesheet" href="${STYLE_URL}">
        <script src="${SCRIPT_URL}" defer></script>
      </head>
      <body>
        <main>
          <h1>Your IP address</h1>
          <p class="ip"><output id="ip">${ip}</output>
    <button id="copy" type="button" hidden>Copy</button>
    <span id="copied" class="visually-hidden" role="status"></span></p>
          ${country ? html`<p id="country">Country: ${country}</p>` : ""}
          ${familiesSection(origins)}
          <h2>Server time (UTC)</h2>
          <p
            class="time"><time id="time" datetime="${timestamp}">${timestamp}</time></p>
          <p id="server-clock" class="offset">${clockSentence(clock)}</p>
          <p id="offset" class="offset" role="status" hidden>
            Measuring your clock…
          </p>
          <nav>
            <a href="/?format=json">JSON</a>
            <a href="/ip">/ip</a>
            <a href="/timestamp">/timestamp</a>
            <a href="/time">/time</a>
            <a href="/openapi.json">OpenAPI</a>
          </nav>
        </main>
      </body>
    </html>
  `);
}
