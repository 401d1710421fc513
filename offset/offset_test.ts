// The clock check against a server whose clock is faked ahead and behind:
// its figures, its agreement with the page's method, its exit codes.
import assert from "node:assert/strict";
import { createApp } from "../service/app.ts";
import { createLogger } from "../service/log.ts";
import { preciseNow } from "../service/time.ts";
import { measure, parseArgs } from "./offset.ts";

const PROGRAM = new URL("./offset.ts", import.meta.url).pathname;

/** Serves the app with its clock `skewMs` ahead, on a port the OS picks. */
async function withSkewedServer(
  skewMs: number,
  body: (url: string, host: string) => Promise<void>,
): Promise<void> {
  const app = createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: "test",
    clock: () => preciseNow() + skewMs,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    app.fetch,
  );
  const host = `127.0.0.1:${server.addr.port}`;
  try {
    await body(`http://${host}`, host);
  } finally {
    await server.shutdown();
  }
}

// The page's exchange (static/app.js): whole-millisecond Date.now().
async function pageExchange(url: string) {
  const t0 = Date.now();
  const { t1, t2 } = await (await fetch(`${url}/time?t0=${t0}`)).json();
  const t3 = Date.now();
  return { offset: ((t1 - t0) + (t2 - t3)) / 2, delay: (t3 - t0) - (t2 - t1) };
}

async function runProgram(host: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--allow-net=${host}`,
      PROGRAM,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

for (const skew of [5000, -5000, 0]) {
  Deno.test(`a server ${skew} ms off: the offset is found within its uncertainty, as the page finds it`, async () => {
    await withSkewedServer(skew, async (url) => {
      const options = parseArgs([url]) as Exclude<
        ReturnType<typeof parseArgs>,
        string
      >;
      const report = await measure(options);
      assert.equal(report.samples, 8);
      const { offset_ms, uncertainty_ms } = report;
      // The server's clock is this one plus `skew`, read sub-millisecond.
      assert.ok(
        Math.abs(offset_ms! - skew) <= uncertainty_ms! + 0.01,
        JSON.stringify(report),
      );
      let page = await pageExchange(url);
      for (let i = 0; i < 7; i++) {
        const next = await pageExchange(url);
        if (next.delay < page.delay) page = next;
      }
      // The page's whole milliseconds add up to 1 ms to its uncertainty.
      const pageUncertainty = Math.max(page.delay, 0) / 2 + 1;
      assert.ok(
        Math.abs(offset_ms! - page.offset) <= uncertainty_ms! + pageUncertainty,
        `${offset_ms} vs the page's ${page.offset}`,
      );
    });
  });
}

Deno.test("exit codes: 0 within --warn, 1 beyond, 2 beyond --crit, 3 without a good sample", async () => {
  await withSkewedServer(5000, async (url, host) => {
    const ok = await runProgram(host, [
      url,
      "--warn",
      "10000",
      "--crit",
      "20000",
    ]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(
      ok.stdout,
      /^OFFSET OK - server ahead by [45]\d{3}(\.\d+)? ms ± [\d.]+ ms .*\| offset=[45]\.\d+s;10\.000000;20\.000000 delay=/,
    );
    const warn = await runProgram(host, [url, "--warn=1000", "--crit=10000"]);
    assert.equal(warn.code, 1, warn.stdout);
    const crit = await runProgram(host, [
      url,
      "--json",
      "--warn",
      "100",
      "--crit",
      "1000",
    ]);
    assert.equal(crit.code, 2);
    const report = JSON.parse(crit.stdout);
    assert.equal(report.status, "CRITICAL");
    assert.equal(report.samples, 8);
  });
  await withSkewedServer(-5000, async (url, host) => {
    const behind = await runProgram(host, [url, "--warn=1000", "--crit=10000"]);
    assert.equal(behind.code, 1);
    assert.match(behind.stdout, /server behind by [45]\d{3}/);
  });
  await withSkewedServer(0, async (url, host) => {
    const usage = await runProgram(host, [url, "--count", "0"]);
    assert.equal(usage.code, 3, "a usage error is UNKNOWN");
    const ok = await runProgram(host, [url]);
    assert.equal(ok.code, 0, ok.stdout);
  });
});

Deno.test("no good sample is UNKNOWN (3): a server that answers no sane echo", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ t0: 1, t1: 2, t2: 3 }),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  try {
    const res = await runProgram(host, [`http://${host}`]);
    assert.equal(res.code, 3);
    assert.match(res.stdout, /^OFFSET UNKNOWN/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno task offset runs the program", async () => {
  await withSkewedServer(0, async (url) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "offset", url, "--json"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(JSON.parse(new TextDecoder().decode(out.stdout)).status, "OK");
  });
});
