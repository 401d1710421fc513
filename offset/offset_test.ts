// The clock check against a server whose clock is faked ahead and behind:
// its figures, its agreement with the page's method, its exit codes; against
// fake servers: the server's own clock state, redirects, endless answers, and
// why it got no good answer.
import assert from "node:assert/strict";
import meta from "../deno.json" with { type: "json" };
import { createApp } from "../service/app.ts";
import { createLogger } from "../service/log.ts";
import { preciseNow } from "../service/time.ts";
import { measure, type Options, parseArgs } from "./offset.ts";

const PROGRAM = new URL("./offset.ts", import.meta.url).pathname;

/** Serves `handler` on 127.0.0.1, on a port the OS picks. */
async function withServer(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  body: (url: string, host: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const host = `127.0.0.1:${server.addr.port}`;
  try {
    await body(`http://${host}`, host);
  } finally {
    await server.shutdown();
  }
}

/** What a `/time` answer says of the server's own clock. */
interface ClockState {
  synchronized: boolean | null;
  max_error_ms: number | null;
  est_error_ms: number | null;
  leap: "none" | "insert" | "delete" | "unknown";
  tai_offset_s: number | null;
  source: "kernel" | null;
}

const SYNCHRONIZED: ClockState = {
  synchronized: true,
  max_error_ms: 4,
  est_error_ms: 0.5,
  leap: "none",
  tai_offset_s: 37,
  source: "kernel",
};

/**
 * Serves the app with its clock `skewMs` ahead. The machine's clock state is
 * not the test's to choose: `/time`'s `clock` is replaced by `clock`, or
 * removed (an older server) when it is undefined.
 */
function withSkewedServer(
  skewMs: number,
  body: (url: string, host: string) => Promise<void>,
  clock?: ClockState,
): Promise<void> {
  const app = createApp({
    trustedProxies: [],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: "test",
    clock: () => preciseNow() + skewMs,
  });
  return withServer(async (req) => {
    const res = await app.fetch(req);
    if (!new URL(req.url).pathname.startsWith("/time") || !res.ok) return res;
    const { clock: _, ...answer } = await res.json();
    return Response.json(clock ? { ...answer, clock } : answer);
  }, body);
}

// The page's exchange (static/app.js): whole-millisecond Date.now().
async function pageExchange(url: string) {
  const t0 = Date.now();
  const { t1, t2 } = await (await fetch(`${url}/time?t0=${t0}`)).json();
  const t3 = Date.now();
  return { offset: ((t1 - t0) + (t2 - t3)) / 2, delay: (t3 - t0) - (t2 - t1) };
}

/** Runs the program with only `host` allowed: its exit code and output. */
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
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

for (const skew of [5000, -5000, 0]) {
  Deno.test(`a server ${skew} ms off: the offset is found within its uncertainty, as the page finds it`, async () => {
    await withSkewedServer(skew, async (url) => {
      const options = parseArgs([url]) as Options;
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
      /^OFFSET OK - server ahead by [45]\d{3}(\.\d+)? ms ± [\d.]+ ms .*server max error 4 ms.*\| offset=[45]\.\d+s;10\.000000;20\.000000 delay=/,
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
  }, SYNCHRONIZED);
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

/** A `/time` answer echoing `t0`, its clock `skewMs` ahead, saying `clock`. */
function timeAnswer(req: Request, clock?: unknown, skewMs = 0): Response {
  const t0 = Number(new URL(req.url).searchParams.get("t0"));
  const t1 = preciseNow() + skewMs;
  const t2 = preciseNow() + skewMs;
  return Response.json(
    clock === undefined ? { t0, t1, t2 } : { t0, t1, t2, clock },
  );
}

Deno.test("--help and --version print usage and deno.json's version, exit 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const help = await runProgram("127.0.0.1", [flag]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: offset URL .*\n[^]*--timeout MS/);
  }
  const version = await runProgram("127.0.0.1", ["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout, `offset (ip-timestamp) ${meta.version}\n`);
  const bad = await runProgram("127.0.0.1", ["--count", "x"]);
  assert.equal(bad.code, 3, "a usage error is UNKNOWN");
  assert.match(bad.stderr, /^bad --count/);
});

Deno.test("no good answer says why, in its line and in --json: refused, timeout, status, not JSON, no echo, a bad clock", async () => {
  // Held, so no one else takes the port; refused on another loopback address.
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = `127.0.0.2:${held.addr.port}`;
  const late: ((res: Response) => void)[] = [];
  const answers: [string, (req: Request) => Response | Promise<Response>][] = [
    ["HTTP 503", () => new Response("busy", { status: 503 })],
    ["not JSON", () => new Response("<html>")],
    [
      "not an echo of the request",
      () => Response.json({ t0: 1, t1: 2, t2: 3 }),
    ],
    ["not an echo of the request", () => Response.json(null)],
    ["bad clock state", (req) => timeAnswer(req, null)],
    ["timeout", () => new Promise((resolve) => late.push(resolve))],
  ];
  const check = async (host: string, reason: string) => {
    const url = `http://${host}`;
    // Only the never-answering server waits for a short time limit.
    const timeout = `--timeout=${reason === "timeout" ? 300 : 2000}`;
    const line = await runProgram(host, [url, "--count=2", timeout]);
    assert.equal(line.code, 3, line.stdout);
    assert.equal(
      line.stdout,
      `OFFSET UNKNOWN - no good answer from ${url}: ${reason} (2/2)\n`,
    );
    const json = await runProgram(host, [url, "--count=2", timeout, "--json"]);
    const report = JSON.parse(json.stdout);
    assert.equal(report.reason, `no good answer: ${reason}`);
    assert.deepEqual(report.failures, { [reason]: 2 });
  };
  await check(refused, "connection refused");
  for (const [reason, answer] of answers) {
    await withServer(answer, async (_, host) => {
      await check(host, reason);
      // Answered before the server shuts down, which waits for them.
      late.splice(0).forEach((resolve) => resolve(new Response("late")));
    });
  }
});

Deno.test("an answer beyond 4 KiB is a bad sample, read no further: endless, or declared too large", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(32);
  const endless = () =>
    new Response(new ReadableStream({ pull: (c) => c.enqueue(chunk) }));
  const declared = () => new Response(new Uint8Array(1 << 20).fill(32));
  for (const answer of [endless, declared]) {
    await withServer(answer, async (url, host) => {
      const res = await runProgram(host, [url, "--json", "--count=2"]);
      assert.equal(res.code, 3, res.stdout);
      assert.deepEqual(JSON.parse(res.stdout).failures, { "too large": 2 });
    });
  }
});

Deno.test("a redirect to another origin is a bad sample; one within the origin is followed", async () => {
  const other = (req: Request) => timeAnswer(req, SYNCHRONIZED, 5000);
  await withServer(other, async (otherUrl) => {
    let to = `${otherUrl}/time`;
    const redirect = (req: Request) => {
      const { pathname, search } = new URL(req.url);
      if (pathname === "/v2/time") return timeAnswer(req, SYNCHRONIZED);
      return Response.redirect(new URL(to + search, req.url), 302);
    };
    await withServer(redirect, async (url) => {
      // The whole host is allowed: only the program stops at another port.
      const away = await runProgram("127.0.0.1", [url, "--json"]);
      assert.equal(away.code, 3, away.stdout);
      const report = JSON.parse(away.stdout);
      assert.equal(report.offset_ms, undefined, "the other server's clock");
      assert.deepEqual(report.failures, { "redirect to another origin": 8 });
      to = "/v2/time";
      const within = await runProgram("127.0.0.1", [url, "--json"]);
      assert.equal(within.code, 0, within.stdout);
      assert.equal(JSON.parse(within.stdout).samples, 8);
    });
  });
});

Deno.test("the server's clock state: its max error adds to the uncertainty; unsynchronised, unknown or beyond --crit is UNKNOWN", async () => {
  const unknown: ClockState = {
    synchronized: null,
    max_error_ms: null,
    est_error_ms: null,
    leap: "unknown",
    tai_offset_s: null,
    source: null,
  };
  const cases: [ClockState | undefined, number, string | undefined][] = [
    [SYNCHRONIZED, 0, undefined],
    [undefined, 0, undefined],
    [
      { ...SYNCHRONIZED, synchronized: false, max_error_ms: 16000 },
      3,
      "not synchronised",
    ],
    [
      { ...SYNCHRONIZED, max_error_ms: 1500 },
      3,
      "max error 1500 ms beyond --crit 1000 ms",
    ],
    [unknown, 3, "synchronisation unknown"],
  ];
  for (const [clock, code, why] of cases) {
    await withServer((req) => timeAnswer(req, clock), async (url, host) => {
      const json = await runProgram(host, [url, "--json"]);
      assert.equal(json.code, code, json.stdout);
      const report = JSON.parse(json.stdout);
      assert.equal(report.samples, 8, "the exchanges themselves are good");
      assert.equal(report.server_max_error_ms, clock?.max_error_ms);
      if (why === undefined) {
        const bound = report.half_delay_ms + (clock?.max_error_ms ?? 0);
        assert.ok(Math.abs(report.uncertainty_ms - bound) < 0.002, json.stdout);
        return;
      }
      const cannot = `the server cannot vouch for its clock: ${why}`;
      assert.equal(report.reason, cannot);
      const line = await runProgram(host, [url]);
      assert.equal(line.code, 3);
      assert.ok(
        line.stdout.startsWith(`OFFSET UNKNOWN - ${cannot}`),
        line.stdout,
      );
    });
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
