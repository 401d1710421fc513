// The page for people, in real headless Chromium against the real stack.
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { clockSentence } from "../service/page.ts";
import type { ClockState } from "../service/clock.ts";
import {
  commandPath,
  needs,
  PROJECT_DIR,
  rawRequest,
  type Stack,
  type StackEnv,
  withStack,
} from "./test_util.ts";

// Debian's package installs `chromium`; other systems name it otherwise.
const CHROMIUM = Deno.env.get("CHROMIUM") ??
  ["chromium", "chromium-browser", "google-chrome"].map(commandPath)
    .find(Boolean);
const ready = needs("nginx", "curl") &&
  (CHROMIUM !== undefined || needs("chromium"));
const ARTIFACTS = `${PROJECT_DIR}test-results`;
const MEASURED = /ahead|behind|exact|matches/;
// The offset line: its bound in ms or s, and when the server cannot vouch
// for its clock, that too.
const offsetLine = (size: string, way: string) =>
  new RegExp(
    `^Your clock is ${size}\\.\\d s ${way}( of the server's)? \\(±[\\d.]+ m?s\\)` +
      "(\\.|, but the server cannot vouch for its own\\.)$",
  );
const GAVE_UP = /^Could not measure your clock/;

function launch(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // The flags this machine's closed network needs (no background calls).
    args: [
      ...extraArgs,
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A fresh stack and a browser, both closed afterwards. */
function withBrowser(
  body: (stack: Stack, browser: Browser) => Promise<void>,
  env: StackEnv = {},
  browserArgs: string[] = [],
): Promise<void> {
  return withStack(env, async (stack) => {
    const browser = await launch(browserArgs);
    try {
      await body(stack, browser);
    } finally {
      await browser.close();
    }
  });
}

/** Records script errors and policy violations of a page. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));
  return problems;
}

/** Counts the page's requests to `/time`. */
function countTimeRequests(page: Page): () => number {
  let count = 0;
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === "/time") count++;
  });
  return () => count;
}

/** Tells the page its tab became visible. */
async function showTab(page: Page): Promise<void> {
  await page.evaluate(`
    Object.defineProperty(document, "visibilityState", { value: "visible" });
    document.dispatchEvent(new Event("visibilitychange"));
  `);
}

/** Waits until `done` holds, for at most 10 s. */
async function poll(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Asserts that the shown server time moves on when the clock does. */
async function assertTicking(page: Page): Promise<void> {
  const first = (await page.textContent("#time"))!;
  await page.clock.runFor(1500);
  const second = (await page.textContent("#time"))!;
  assert.match(second, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/);
  assert.ok(
    Date.parse(second) - Date.parse(first) >= 1000,
    `${first} -> ${second}`,
  );
}

Deno.test({
  name:
    "the page shows the JSON's address, a ticking clock and the clock's offset measured with /time",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withBrowser(async (stack, browser) => {
      const json = await (await fetch(`${stack.url}/?format=json`)).json();
      const context = await browser.newContext({
        viewport: { width: 390, height: 720 },
        colorScheme: "dark",
      });
      await context.grantPermissions(["clipboard-read", "clipboard-write"]);
      const page = await context.newPage();
      const problems = watchProblems(page);
      const exchanges = countTimeRequests(page);
      // The visitor's clock runs 90 s ahead of the server's.
      await page.clock.install({ time: Date.now() + 90_000 });
      const res = await page.goto(`${stack.url}/`);
      assert.equal(res?.headers()["content-type"], "text/html; charset=utf-8");
      assert.match(
        res?.headers()["content-security-policy"] ?? "",
        /script-src 'self'.*; connect-src 'self';/,
      );
      assert.equal(await page.textContent("#ip"), json.ip);

      const offset = page.locator("#offset");
      assert.equal(await offset.getAttribute("role"), "status");
      await offset.filter({ hasText: MEASURED }).waitFor({ timeout: 10_000 });
      assert.match(
        (await offset.textContent())!,
        offsetLine("(89|90|91)", "ahead"),
      );
      const ms = Number(await offset.getAttribute("data-offset-ms"));
      assert.ok(Math.abs(ms - 90_000) < 1000, `measured offset ${ms}`);
      assert.equal(exchanges(), 8, "eight exchanges with the server");

      // The shown time is the server's (the faked 90 s taken off) and ticks.
      const shown = Date.parse((await page.textContent("#time"))!);
      assert.ok(Math.abs(shown - Date.now()) < 2000, `shown ${shown}`);
      await assertTicking(page);

      // Coming back to the tab measures again.
      await showTab(page);
      await poll(() => exchanges() === 16, "eight more exchanges");
      await offset.filter({ hasText: MEASURED }).waitFor({ timeout: 10_000 });
      assert.equal(exchanges(), 16, "eight more when the tab is visible");

      await page.click("#copy");
      assert.equal(
        await page.evaluate("navigator.clipboard.readText()"),
        json.ip,
      );
      // Screen readers hear it: a live region says it.
      assert.equal(await page.getAttribute("#copied", "role"), "status");
      assert.equal(await page.textContent("#copied"), "Copied");
      assert.deepEqual(problems, [], "no script or policy errors");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/page-phone-dark.png` });
      const wide = await browser.newPage({
        viewport: { width: 1000, height: 520 },
        colorScheme: "light",
      });
      await wide.goto(`${stack.url}/`);
      await wide.locator("#offset").filter({ hasText: MEASURED }).waitFor();
      await wide.screenshot({ path: `${ARTIFACTS}/page.png` });
    });
  },
});

// What a failing /time answers: each is discarded, never shown.
const FAILURES: [string, (url: URL) => { status?: number; body?: string }][] = [
  ["429", () => ({ status: 429, body: '{"error":"Too many requests"}' })],
  ["503", () => ({ status: 503, body: '{"error":"Service unavailable"}' })],
  ["garbage", () => ({ body: "<html>not json" })],
  ["non-finite", (url) => ({
    // Valid JSON whose numbers parse to Infinity.
    body: `{"t0":${url.searchParams.get("t0")},"t1":1e999,"t2":1e999}`,
  })],
  ["absurd", (url) => ({
    // Finite, but no clock is 10^300 ms off (and Date cannot show it).
    body: `{"t0":${url.searchParams.get("t0")},"t1":1e300,"t2":1e300}`,
  })],
];

Deno.test({
  name:
    "the page discards bad /time answers (429, 503, garbage, non-finite, absurd, none), gives up with a line and keeps ticking",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withBrowser(async (stack, browser) => {
      const cases = [
        ...FAILURES.map(([name, answer]) => ({ name, answer })),
        { name: "no answer", answer: undefined },
      ];
      await Promise.all(cases.map(async ({ name, answer }) => {
        const page = await browser.newPage();
        const problems = watchProblems(page);
        const requests = countTimeRequests(page);
        await page.route("**/time?*", (route) => {
          if (answer === undefined) return; // never answered
          const { status = 200, body } = answer(new URL(route.request().url()));
          return route.fulfill({
            status,
            contentType: "application/json",
            body,
          });
        });
        await page.clock.install({ time: Date.now() + 90_000 });
        await page.goto(`${stack.url}/`);
        const offset = page.locator("#offset");
        // The page gives up within 7.25 s of its clock; the wait only
        // guards against a hang, so a loaded machine cannot miss it.
        await offset.filter({ hasText: GAVE_UP }).waitFor({ timeout: 60_000 });
        // Its 5 s deadline, not the number of attempts (16), ended the
        // wait for answers that never came: requests at 0, 2.25 and 4.5 s
        // of its clock (2 s each, 250 ms apart). A slow machine sends fewer.
        const most = answer === undefined ? 3 : 16;
        assert.ok(requests() <= most, `${name}: ${requests()} requests`);
        assert.equal(await offset.getAttribute("data-offset-ms"), null, name);
        assert.doesNotMatch(
          await page.textContent("main") ?? "",
          /NaN|Invalid|Infinity/,
          name,
        );
        // The clock still ticks, from the time the page was rendered.
        await assertTicking(page);
        const shown = Date.parse((await page.textContent("#time"))!);
        assert.ok(Math.abs(shown - Date.now()) < 5000, `${name}: ${shown}`);
        // Failed requests are logged by Chromium itself; nothing else.
        assert.deepEqual(
          problems.filter((p) => !/Failed to load resource/.test(p)),
          [],
          name,
        );
        await page.close();
      }));
    });
  },
});

Deno.test({
  name: "bad /time answers among good ones are skipped and the offset is right",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withBrowser(async (stack, browser) => {
      const page = await browser.newPage();
      let calls = 0;
      // Every other answer fails, in each of the ways.
      await page.route("**/time?*", (route) => {
        const failure = calls % 2 === 0
          ? FAILURES[(calls / 2) % FAILURES.length][1]
          : undefined;
        calls++;
        if (!failure) return route.continue();
        const { status = 200, body } = failure(new URL(route.request().url()));
        return route.fulfill({ status, contentType: "application/json", body });
      });
      await page.clock.install({ time: Date.now() - 30_000 });
      await page.goto(`${stack.url}/`);
      const offset = page.locator("#offset");
      await offset.filter({ hasText: MEASURED }).waitFor({ timeout: 15_000 });
      assert.match(
        (await offset.textContent())!,
        offsetLine("(29|30|31)", "behind"),
      );
      const ms = Number(await offset.getAttribute("data-offset-ms"));
      assert.ok(Math.abs(ms + 30_000) < 1000, `measured offset ${ms}`);
      assert.equal(calls, 16, "eight good exchanges, eight discarded");

      // Measured again when the tab is shown, and the server now fails:
      // the last measurement stays in use, and the page says so.
      await page.route("**/time?*", (route) => route.fulfill({ status: 503 }));
      await showTab(page);
      await offset.filter({ hasText: /^Could not measure your clock again/ })
        .waitFor({ timeout: 15_000 });
      assert.equal(await offset.getAttribute("data-offset-ms"), String(ms));
      const shown = Date.parse((await page.textContent("#time"))!);
      assert.ok(Math.abs(shown - Date.now()) < 2000, `shown ${shown}`);
    });
  },
});

const CLOCKS: [string, ClockState, RegExp, RegExp][] = [
  [
    "synchronised",
    {
      synchronized: true,
      max_error_ms: 4,
      est_error_ms: 0.5,
      leap: "none",
      tai_offset_s: 37,
      source: "kernel",
    },
    /^Server clock synchronised, ± 4 ms\.$/,
    /^Your clock is (89|90|91)\.\d s ahead \(±([5-9]|\d\d+) ms\)\.$/,
  ],
  [
    "unsynchronised",
    {
      synchronized: false,
      max_error_ms: 16000,
      est_error_ms: 16000,
      leap: "unknown",
      tai_offset_s: null,
      source: "kernel",
    },
    /^The server's clock is not synchronised: your offset is only good to ± 16(\.\d)? s\.$/,
    /^Your clock is (89|90|91)\.\d s ahead \(±16(\.\d)? s\)\.$/,
  ],
  [
    "unknown",
    {
      synchronized: null,
      max_error_ms: null,
      est_error_ms: null,
      leap: "unknown",
      tai_offset_s: null,
      source: null,
    },
    /^The server cannot vouch for its clock\.$/,
    /^Your clock is (89|90|91)\.\d s ahead of the server's \(±\d+ ms\), but the server cannot vouch for its own\.$/,
  ],
];

Deno.test({
  name:
    "the page says what the server vouches for about its clock, and never shows the visitor's offset surer than that",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withBrowser(async (stack, browser) => {
      await Promise.all(CLOCKS.map(async ([name, clock, line, offset]) => {
        const page = await browser.newPage();
        const problems = watchProblems(page);
        // The real exchange, with the server's clock in this state.
        await page.route("**/time?*", async (route) => {
          const response = await route.fetch();
          const json = { ...await response.json(), clock };
          await route.fulfill({ response, json });
        });
        await page.clock.install({ time: Date.now() + 90_000 });
        await page.goto(`${stack.url}/`);
        const measured = page.locator("#offset").filter({ hasText: MEASURED });
        await measured.waitFor({ timeout: 15_000 });
        assert.match((await page.textContent("#server-clock"))!, line, name);
        assert.match((await measured.textContent())!, offset, name);
        const error = Number(await measured.getAttribute("data-error-ms"));
        assert.ok(error >= (clock.max_error_ms ?? 1), `${name}: ± ${error}`);
        assert.deepEqual(problems, [], name);
        await page.close();
      }));
    });
  },
});

// A Content-Security-Policy cannot name an IPv6 literal, so IPV6_ORIGIN is
// a name (config.ts); Chromium resolves this one to ::1 only, as DNS with
// just an AAAA record would.
const IPV6_NAME = "ipv6.ip-timestamp.test";

Deno.test({
  name:
    "with IPV4_ORIGIN and IPV6_ORIGIN the page shows the address over each family",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    let v4 = "", v6 = "";
    await withBrowser(async (stack, browser) => {
      const res = await fetch(`${stack.url}/`, {
        headers: { accept: "text/html" },
      });
      await res.body?.cancel();
      assert.match(
        res.headers.get("content-security-policy")!,
        new RegExp(
          `; connect-src 'self' ${RegExp.escape(v4)} ${RegExp.escape(v6)};`,
        ),
      );
      const page = await browser.newPage();
      const problems = watchProblems(page);
      await page.goto(`${v4}/`);
      await page.locator("#ipv6[data-state]").waitFor({ timeout: 10_000 });
      await page.locator("#ipv4[data-state]").waitFor({ timeout: 10_000 });
      assert.deepEqual(problems, []);
      assert.equal(await page.textContent("#ipv4"), "127.0.0.1");
      assert.equal(await page.textContent("#ipv6"), "::1");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.setViewportSize({ width: 1000, height: 520 });
      await page.screenshot({ path: `${ARTIFACTS}/page-families.png` });

      // A visitor who cannot reach the IPv6-only host is told so.
      const without = await browser.newPage();
      await without.route(`${v6}/**`, (route) => route.abort());
      await without.goto(`${v4}/`);
      await without.locator("#ipv6[data-state]").waitFor({ timeout: 10_000 });
      await without.locator("#ipv4[data-state]").waitFor({ timeout: 10_000 });
      assert.equal(await without.textContent("#ipv4"), "127.0.0.1");
      assert.match(
        (await without.textContent("#ipv6"))!,
        /^Not available: your browser could not reach this service over IPv6\.$/,
      );
    }, (port) => {
      v4 = `http://127.0.0.1:${port}`;
      v6 = `http://${IPV6_NAME}:${port}`;
      return { IPV4_ORIGIN: v4, IPV6_ORIGIN: v6 };
    }, [`--host-resolver-rules=MAP ${IPV6_NAME} [::1]`]);
  },
});

Deno.test({
  name: "without JavaScript the page still shows the address and the time",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withBrowser(async (stack, browser) => {
      const context = await browser.newContext({ javaScriptEnabled: false });
      const page = await context.newPage();
      await page.goto(`${stack.url}/`);
      assert.equal(await page.textContent("#ip"), "127.0.0.1");
      assert.match((await page.textContent("#time"))!, /\+00:00$/);
      // What the server vouches for about its clock, in the page's words.
      const { clock } = await (await fetch(`${stack.url}/time`)).json();
      assert.equal(
        (await page.textContent("#server-clock"))!.trim(),
        clockSentence(clock),
      );
      assert.equal(await page.isVisible("#copy"), false, "no dead button");
      const links = await page.$$eval(
        "nav a",
        (as) => as.map((a) => a.getAttribute("href")),
      );
      assert.deepEqual(links, [
        "/?format=json",
        "/ip",
        "/timestamp",
        "/time",
        "/openapi.json",
      ]);
    });
  },
});

Deno.test({
  name: "curl, scripts and fetch callers still get the JSON at /",
  ignore: !ready,
  fn: async () => {
    await withStack({}, async (stack) => {
      const curl = await new Deno.Command("curl", {
        args: ["-s", `${stack.url}/`],
        stdout: "piped",
      }).output();
      assert.deepEqual(
        Object.keys(JSON.parse(new TextDecoder().decode(curl.stdout))),
        ["timestamp", "ip"],
      );
      for (const accept of ["application/json", "*/*"]) {
        const res = await fetch(`${stack.url}/`, { headers: { accept } });
        assert.equal(
          res.headers.get("content-type"),
          "application/json",
          accept,
        );
        assert.equal(res.headers.get("vary"), "Accept");
        assert.deepEqual(Object.keys(await res.json()), ["timestamp", "ip"]);
      }
      const bare = await rawRequest(
        stack.port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      assert.match(bare, /content-type: application\/json/i);
      assert.match(
        bare,
        /\r\n\r\n\{"timestamp":"[^"]+","ip":"127\.0\.0\.1"\}$/,
      );
    });
  },
});
