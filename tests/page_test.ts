// The page for people, in real headless Chromium against the real stack.
import assert from "node:assert/strict";
import { type Browser, chromium } from "playwright-core";
import {
  needs,
  PROJECT_DIR,
  rawRequest,
  type Stack,
  withStack,
} from "./test_util.ts";

const CHROMIUM = "/usr/bin/chromium";
const ready = needs("nginx", "chromium", "curl");
const ARTIFACTS = `${PROJECT_DIR}test-results`;

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // The flags this machine's closed network needs (no background calls).
    args: [
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
): Promise<void> {
  return withStack({}, async (stack) => {
    const browser = await launch();
    try {
      await body(stack, browser);
    } finally {
      await browser.close();
    }
  });
}

Deno.test({
  name:
    "the page shows the JSON's address, a ticking clock and the clock's error",
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
      const problems: string[] = [];
      page.on(
        "console",
        (m) => m.type() === "error" && problems.push(m.text()),
      );
      page.on("pageerror", (e) => problems.push(String(e)));
      // The visitor's clock runs 90 s ahead of the server's.
      await page.clock.install({ time: Date.now() + 90_000 });
      const res = await page.goto(`${stack.url}/`);
      assert.equal(res?.headers()["content-type"], "text/html; charset=utf-8");
      assert.match(
        res?.headers()["content-security-policy"] ?? "",
        /script-src 'self'/,
      );
      assert.equal(await page.textContent("#ip"), json.ip);

      const offset = page.locator("#offset");
      await offset.filter({ hasText: /ahead|behind|exact/ }).waitFor({
        timeout: 10_000,
      });
      const text = await offset.textContent();
      assert.match(
        text!,
        /^Your clock is (89|90|91)\.\d s ahead \(±\d+ ms\)\.$/,
      );
      const ms = Number(await offset.getAttribute("data-offset-ms"));
      assert.ok(Math.abs(ms - 90_000) < 1000, `measured offset ${ms}`);

      // The shown time is the server's (the faked 90 s taken off) and ticks.
      const first = await page.textContent("#time");
      const shown = Date.parse(first!);
      assert.ok(Math.abs(shown - Date.now()) < 2000, `shown ${first}`);
      await page.clock.runFor(1500);
      const second = await page.textContent("#time");
      assert.match(
        second!,
        /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/,
      );
      assert.ok(Date.parse(second!) - shown >= 1000, `${first} -> ${second}`);

      await page.click("#copy");
      assert.equal(
        await page.evaluate("navigator.clipboard.readText()"),
        json.ip,
      );
      assert.deepEqual(problems, [], "no script or policy errors");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/page-phone-dark.png` });
      const wide = await browser.newPage({
        viewport: { width: 1000, height: 520 },
        colorScheme: "light",
      });
      await wide.goto(`${stack.url}/`);
      await wide.locator("#offset").filter({ hasText: /ahead|behind|exact/ })
        .waitFor();
      await wide.screenshot({ path: `${ARTIFACTS}/page.png` });
    });
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
      assert.equal(await page.isVisible("#copy"), false, "no dead button");
      const links = await page.$$eval(
        "nav a",
        (as) => as.map((a) => a.getAttribute("href")),
      );
      assert.deepEqual(links, [
        "/?format=json",
        "/ip",
        "/timestamp",
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
