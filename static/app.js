// The page at `/`: a live clock, the visitor's clock offset measured with
// `/time?t0=`, the address over each family, and the copy button. A static
// file, so that the page's policy can forbid inline script.
"use strict";

const EXCHANGES = 8; // good exchanges wanted; the one with least delay wins
const ATTEMPTS = 16; // bad answers included
const GIVE_UP_MS = 5000; // for the whole measurement
const REQUEST_MS = 2000; // for one request
const RETRY_MS = 250; // after a bad answer (a 429 asks to slow down)
const MAX_OFFSET_MS = 1e12; // 31 years: beyond it an answer is nonsense

const timeEl = document.getElementById("time");
const clockEl = document.getElementById("server-clock");
const offsetEl = document.getElementById("offset");
const ipEl = document.getElementById("ip");
const copyEl = document.getElementById("copy");
const copiedEl = document.getElementById("copied");

// How far the visitor's clock is ahead of the server's; server time is
// local time minus this. First guess: the time the page was rendered.
let aheadMs = Date.now() - Date.parse(timeEl.getAttribute("datetime"));
if (!Number.isFinite(aheadMs)) aheadMs = 0;

function format(ms) {
  return new Date(ms).toISOString().slice(0, -1) + "+00:00";
}

function tick() {
  const text = format(Date.now() - aheadMs);
  timeEl.textContent = text;
  timeEl.setAttribute("datetime", text);
}

function describe(ms) {
  const abs = Math.abs(ms);
  return abs >= 1000 ? `${(abs / 1000).toFixed(1)} s` : `${Math.round(abs)} ms`;
}

// A bound, rounded up: never more certain than it is (service/page.ts).
function plusMinus(ms) {
  return ms >= 1000 ? `${Math.ceil(ms / 100) / 10} s` : `${Math.ceil(ms)} ms`;
}

// The server's own bound on its clock's error, ms, from /time's `clock`:
// undefined when it cannot vouch for its clock (or says nothing of it).
function serverError(clock) {
  if (typeof clock !== "object" || clock === null) return undefined;
  const max = clock.max_error_ms;
  const known = typeof clock.synchronized === "boolean";
  return known && Number.isFinite(max) && max >= 0 ? max : undefined;
}

// The line under the server's time, in service/page.ts's words; `error`
// is the visitor's whole bound once measured.
function showClock(clock, error) {
  const own = serverError(clock);
  clockEl.textContent = own === undefined
    ? "The server cannot vouch for its clock."
    : clock.synchronized
    ? `Server clock synchronised, ± ${plusMinus(own)}.`
    : `The server's clock is not synchronised: your offset is only good to ± ${
      plusMinus(error ?? own)
    }.`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The parsed JSON of a 2xx answer, or undefined for anything else: an error
// status, a body that is not JSON, no answer within `ms`.
async function getJson(url, ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    const res = await fetch(url, {
      cache: "no-store",
      signal: controller.signal,
    });
    return res.ok ? await res.json() : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

// One NTP-style exchange: t0 and t3 are this clock's, t1 and t2 the
// server's. Undefined when the answer is not a sane echo of this request.
async function exchange(ms) {
  const t0 = Date.now();
  const body = await getJson(`/time?t0=${t0}`, ms);
  const t3 = Date.now();
  if (typeof body !== "object" || body === null || body.t0 !== t0) return;
  const { t1, t2 } = body;
  if (!Number.isFinite(t1) || !Number.isFinite(t2) || t2 < t1) return;
  const offset = ((t1 - t0) + (t2 - t3)) / 2; // server minus visitor
  const delay = (t3 - t0) - (t2 - t1);
  // Whole-millisecond t0/t3 against sub-millisecond t1/t2: allow 1 ms.
  if (!(Math.abs(offset) < MAX_OFFSET_MS) || !(delay > -1)) return;
  return { offset, delay: Math.max(delay, 0), clock: body.clock };
}

// The offset is only as good as the server's clock: its own bound is
// added to the network's, and when it has none the line says so.
function showOffset(best) {
  aheadMs = -best.offset;
  const own = serverError(best.clock);
  const error = Math.max(best.delay / 2, 1) + (own ?? 0);
  const bound = `(±${plusMinus(error)})`;
  const way = aheadMs > 0 ? "ahead" : "behind";
  const exact = Math.abs(aheadMs) <= error;
  if (own !== undefined) {
    offsetEl.textContent = exact
      ? `Your clock is exact ${bound}.`
      : `Your clock is ${describe(aheadMs)} ${way} ${bound}.`;
  } else {
    offsetEl.textContent = `${
      exact
        ? `Your clock matches the server's ${bound}`
        : `Your clock is ${describe(aheadMs)} ${way} of the server's ${bound}`
    }, but the server cannot vouch for its own.`;
  }
  offsetEl.dataset.offsetMs = String(Math.round(aheadMs));
  offsetEl.dataset.errorMs = String(Math.ceil(error));
  showClock(best.clock, error);
}

let measuring = false;
let measured = false;

async function measure() {
  if (measuring) return;
  measuring = true;
  offsetEl.hidden = false;
  offsetEl.textContent = "Measuring your clock…";
  const deadline = performance.now() + GIVE_UP_MS;
  let best;
  let good = 0;
  for (let i = 0; i < ATTEMPTS && good < EXCHANGES; i++) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const sample = await exchange(Math.min(REQUEST_MS, left));
    if (sample) {
      good++;
      if (!best || sample.delay < best.delay) best = sample;
    } else {
      await sleep(RETRY_MS);
    }
  }
  measuring = false;
  if (best) {
    showOffset(best);
    measured = true;
  } else if (measured) {
    offsetEl.textContent =
      "Could not measure your clock again: the server did not answer properly. The time shown uses the last measurement.";
  } else {
    offsetEl.textContent =
      "Could not measure your clock: the server did not answer properly. The time shown counts from when the page was made.";
  }
}

// Each origin reaches the service over one family only; a visitor without
// that family gets no answer from it.
function showFamilies() {
  const section = document.getElementById("families");
  if (!section) return;
  section.hidden = false;
  for (const [family, label] of [["ipv4", "IPv4"], ["ipv6", "IPv6"]]) {
    const out = document.getElementById(family);
    if (!out) continue;
    getJson(`${out.dataset.origin}/ip?format=json`, REQUEST_MS * 2).then(
      (body) => {
        const ok = typeof body === "object" && body !== null &&
          typeof body.ip === "string" && body.family === family;
        out.textContent = ok
          ? body.ip
          : `Not available: your browser could not reach this service over ${label}.`;
        out.dataset.state = ok ? "ok" : "unavailable";
      },
    );
  }
}

copyEl.hidden = false;
copyEl.addEventListener("click", async () => {
  let text = "Copied";
  try {
    await navigator.clipboard.writeText(ipEl.textContent);
  } catch {
    text = "Copy failed";
  }
  // The button shows it; the live region has screen readers say it.
  copyEl.textContent = text;
  copiedEl.textContent = text;
  setTimeout(() => {
    copyEl.textContent = "Copy";
    copiedEl.textContent = "";
  }, 1500);
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") measure();
});

tick();
setInterval(tick, 100);
measure();
showFamilies();
