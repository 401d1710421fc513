/**
 * The HTML page a browser gets at `/`: rendered per request so the address
 * and time show without JavaScript; script and style are static files.
 *
 * @module
 */

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** What one page shows. */
export interface PageData {
  /** The caller's address. */
  ip: string;
  /** The time of the answer, as `/` gives it. */
  timestamp: string;
  /** The service's version, for cache-busting the static files. */
  version: string;
}

/** Renders the page for one request. */
export function renderPage({ ip, timestamp, version }: PageData): string {
  const e = escapeHtml;
  const v = encodeURIComponent(version);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Your IP address is ${e(ip)}</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/static/style.css?v=${v}">
<script src="/static/app.js?v=${v}" defer></script>
</head>
<body>
<main>
<h1>Your IP address</h1>
<p class="ip"><output id="ip">${e(ip)}</output>
<button id="copy" type="button" hidden>Copy</button></p>
<h2>Server time (UTC)</h2>
<p class="time"><time id="time" datetime="${e(timestamp)}">${
    e(timestamp)
  }</time></p>
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
`;
}
