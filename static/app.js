// Live clock, clock-offset estimate and copy button for the page at `/`.
// Served as a static file so the page's policy can forbid inline script.
"use strict";

const SAMPLES = 5;
const timeEl = document.getElementById("time");
const offsetEl = document.getElementById("offset");
const ipEl = document.getElementById("ip");
const copyEl = document.getElementById("copy");

// Server time = local time - offset; start from the rendered timestamp.
let offsetMs = Date.now() - Date.parse(timeEl.getAttribute("datetime"));

function format(ms) {
  return new Date(ms).toISOString().slice(0, -1) + "+00:00";
}

function tick() {
  const text = format(Date.now() - offsetMs);
  timeEl.textContent = text;
  timeEl.setAttribute("datetime", text);
}

function describe(ms) {
  const abs = Math.abs(ms);
  return abs >= 1000 ? `${(abs / 1000).toFixed(1)} s` : `${Math.round(abs)} ms`;
}

// One NTP-style sample: the server read its clock half a round trip ago.
async function sample() {
  const sent = Date.now();
  const res = await fetch("/timestamp?format=json", { cache: "no-store" });
  const { unix_ms: server } = await res.json();
  const received = Date.now();
  const rtt = received - sent;
  return { offset: sent + rtt / 2 - server, rtt };
}

async function measure() {
  offsetEl.hidden = false;
  try {
    let best;
    for (let i = 0; i < SAMPLES; i++) {
      const s = await sample();
      if (!best || s.rtt < best.rtt) best = s;
    }
    offsetMs = best.offset;
    const error = Math.max(best.rtt / 2, 1);
    if (Math.abs(best.offset) <= error) {
      offsetEl.textContent = `Your clock is exact (±${describe(error)}).`;
    } else {
      const side = best.offset > 0 ? "ahead" : "behind";
      offsetEl.textContent = `Your clock is ${
        describe(best.offset)
      } ${side} (±${describe(error)}).`;
    }
    offsetEl.dataset.offsetMs = String(Math.round(best.offset));
  } catch {
    offsetEl.textContent = "Could not measure your clock.";
  }
}

copyEl.hidden = false;
copyEl.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(ipEl.textContent);
    copyEl.textContent = "Copied";
  } catch {
    copyEl.textContent = "Copy failed";
  }
  setTimeout(() => (copyEl.textContent = "Copy"), 1500);
});

tick();
setInterval(tick, 100);
measure();
