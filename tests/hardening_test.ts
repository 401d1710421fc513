// The request rules at both doors (service/request_rules.ts): one table of
// requests, the same answer from the service alone and from the stack; and
// what only the stack's nginx can do about them (bodies it never waits for,
// limits per client).
import assert from "node:assert/strict";
import { ACCEPT_LIMIT } from "../service/request_rules.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import { COMMON_HEADERS } from "../service/common_headers.ts";
import { exchange, parseAnswer, type RawAnswer } from "./http_answer.ts";
import {
  FORWARDING_CASES,
  TABLE_PEER,
  TABLE_TRUSTED,
} from "./forwarding_cases.ts";
import ipaddr from "ipaddr.js";
import {
  formatAddress,
  parseAddress,
  parseRange,
  resolveClient,
  splitForwardedFor,
} from "../service/client_ip.ts";
import {
  denoTask,
  listening,
  needs,
  needsRoot,
  onFreePort,
  type Running,
  STATIC_PATHS,
  withStack,
} from "./test_util.ts";

const ready = needs("nginx", "ip");

/** Latin-1 text as the bytes it spells (a raw 0x80 stays one byte). */
function bytes(latin1: string): Uint8Array {
  return Uint8Array.from(latin1, (c) => c.charCodeAt(0));
}

const request = (head: string, body = "") =>
  bytes(`${head}\r\nConnection: close\r\n\r\n${body}`);
const get = (lines: string) => request(`GET /ip HTTP/1.1\r\n${lines}`);

/** A request and the status both doors answer it with. */
export const RULE_CASES: [string, Uint8Array, number][] = [
  ["a plain Host", get("Host: ok.example:80"), 200],
  ["an IPv6 literal Host", get("Host: [::1]:80"), 200],
  ["Host a<b>", get("Host: a<b>"), 400],
  ['Host a"b', get('Host: a"b'), 400],
  ["Host a{b}", get("Host: a{b}"), 400],
  ["Host a|b", get("Host: a|b"), 400],
  ["Host [::1", get("Host: [::1"), 400],
  ["Host with a raw 0x80", get("Host: a\x80b"), 400],
  ["an empty Host", get("Host: "), 400],
  ["Content-Length: 0", get("Host: x\r\nContent-Length: 0"), 200],
  [
    "a GET with a body",
    request("GET /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 3", "abc"),
    413,
  ],
  [
    "a chunked body",
    request(
      "GET /ip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
      "3\r\nabc\r\n0\r\n\r\n",
    ),
    413,
  ],
  [
    "a POST with a body",
    request("POST /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 3", "abc"),
    413,
  ],
  [
    "a TRACE with a body",
    request("TRACE /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 3", "abc"),
    413,
  ],
  [
    "a static file with a body",
    request(
      "GET /static/app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 3",
      "abc",
    ),
    413,
  ],
  [
    "an Accept at the limit",
    get(`Host: x\r\nAccept: ${"a".repeat(ACCEPT_LIMIT)}`),
    200,
  ],
  [
    "an Accept over the limit",
    get(`Host: x\r\nAccept: ${"a".repeat(ACCEPT_LIMIT + 1)}`),
    431,
  ],
];

// A refusal is JSON with the common headers; nothing sent comes back.
function checkAnswer(what: string, answer: RawAnswer, status: number) {
  what = `${shown(answer)}`;
  assert.equal(answer.status, status, what);
  if (status < 400) return;
  assert.equal(answer.get("content-type"), "application/json", what);
  assert.ok(JSON.parse(answer.body).error, what);
  assert.doesNotMatch(answer.body, /abc|\x80|a<b|a\{b|a\|b/, what);
  for (const [name, value] of Object.entries(COMMON_HEADERS)) {
    assert.deepEqual(answer.all(name), [value], `${what}: ${name}`);
  }
}

async function runRules(port: number): Promise<void> {
  const failures: string[] = [];
  for (const [what, bytes, status] of RULE_CASES) {
    try {
      checkAnswer(what, parseAnswer(await exchange(port, bytes)), status);
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  assert.deepEqual(failures, []);
}

// The answer in a failure's message, short.
const shown = (a: RawAnswer) =>
  `${a.status} ${a.get("content-type")} ${JSON.stringify(a.body.slice(0, 60))}`;

/** The service alone on a free port, stopped after `body`. */
async function withService(
  body: (port: number) => Promise<void>,
): Promise<void> {
  const { port, proc } = await onFreePort(async (port) => ({
    port,
    proc: await listening(
      denoTask("start", { PORT: String(port), HOST: "127.0.0.1" }),
    ) as Running,
  }));
  try {
    await body(port);
  } finally {
    proc.child.kill("SIGTERM");
    await proc.child.status;
    await proc.drained;
  }
}

Deno.test("the request rules, service alone: Host, body and Accept as the table says", () =>
  withService(runRules));

Deno.test({
  name: "the request rules, stack: the same answers as the service alone",
  ignore: !ready,
  fn: () => withStack({ RATE_LIMIT: "50" }, (stack) => runRules(stack.port)),
});

// Deno.serve answers a raw byte in the target itself (docs/http.md), so
// these reach only the stack, whose every answer must be ours.
Deno.test({
  name: "every answer the stack sends to a raw byte in the target is JSON",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const failures: string[] = [];
      for (const method of ["GET", "HEAD", "TRACE", "OPTIONS", "PUT", "BREW"]) {
        for (const target of ["/ip\x80", "/static/app.js\x80", "/\xff"]) {
          const what = JSON.stringify(`${method} ${target}`);
          try {
            const answer = parseAnswer(
              await exchange(
                stack.port,
                request(`${method} ${target} HTTP/1.1\r\nHost: x`),
              ),
            );
            assert.equal(answer.status, 400, shown(answer));
            assert.equal(answer.get("content-type"), "application/json");
            if (method !== "HEAD") assert.ok(JSON.parse(answer.body).error);
          } catch (err) {
            failures.push(`${what}: ${(err as Error).message.split("\n")[0]}`);
          }
        }
      }
      assert.deepEqual(failures, []);
    }),
});

/** A connection's input as it comes: what was read, and whether it ended. */
interface Reader {
  text: string;
  closed: boolean;
  /** Resolves when `done()` holds, or after `ms` (then it may not). */
  until(done: () => boolean, ms: number): Promise<void>;
}

function reader(conn: Deno.Conn): Reader {
  const state: Reader = {
    text: "",
    closed: false,
    async until(done, ms) {
      const deadline = Date.now() + ms;
      while (!done() && !state.closed && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  (async () => {
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        state.text += new TextDecoder("latin1").decode(buffer.subarray(0, n));
      }
    } catch {
      // A reset: closed too.
    }
    state.closed = true;
  })();
  return state;
}

Deno.test({
  name:
    "the stack answers a request with a body at once, and closes while the body trickles",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: stack.port,
      });
      try {
        const input = reader(conn);
        await conn.write(bytes(
          "POST /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na",
        ));
        // Before the body: the answer (before this fix nginx waited for
        // all 100 bytes, one every client_body_timeout at most).
        await input.until(() => input.text.includes("}\n"), 4_000);
        assert.match(input.text, /^HTTP\/1\.1 413 /, "answered at once");
        // A byte every 300 ms (40 at most): nginx stops reading within
        // lingering_time (2 s) and closes.
        for (let i = 0; i < 40 && !input.closed; i++) {
          await conn.write(bytes("a")).catch(() => {});
          await input.until(() => false, 300);
        }
        assert.ok(input.closed, "closed within 12 s of trickling");
      } finally {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
    }),
});

/** The stack's log entries on stderr (the relay's JSON lines). */
function logEntries(lines: string[]): Record<string, unknown>[] {
  return lines.map((line) => JSON.parse(line));
}

/** Polls `check` every 100 ms until it holds, at most `ms`. */
async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

// What nginx refuses by the rules: a bad Host, a body, an oversized Accept,
// a raw byte in the target.
const REFUSED = [
  get("Host: a<b>"),
  request("GET /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 3", "abc"),
  get(`Host: x\r\nAccept: ${"a".repeat(ACCEPT_LIMIT + 1)}`),
  request("GET /ip\x80 HTTP/1.1\r\nHost: x"),
];

Deno.test({
  name:
    "a client's flood of refused requests is limited (429 beyond the burst) and summarised, one line a second",
  ignore: !ready,
  fn: () =>
    withStack({ RATE_LIMIT: "5" }, async (stack) => {
      const count = 120;
      const started = Date.now();
      const answers: RawAnswer[] = [];
      for (let i = 0; i < count; i++) {
        answers.push(parseAnswer(await exchange(stack.port, REFUSED[i % 4])));
      }
      const seconds = Math.ceil((Date.now() - started) / 1000);
      const refused = answers.filter((a) => a.status !== 429).length;
      // 1 + a burst of 10 at once, then 5 a second; the rest are 429s.
      assert.ok(refused <= 11 + 5 * seconds, `${refused} in ${seconds} s`);
      for (const a of answers) {
        assert.match(a.body, /^\{"error":"[^"]+"\}\n$/, shown(a));
        assert.equal(a.get("content-type"), "application/json");
      }
      const lines = () =>
        logEntries(stack.stderr).filter((e) =>
          e.msg === "requests refused" && e.client === "127.0.0.1"
        );
      const counted = () => lines().reduce((n, e) => n + Number(e.count), 0);
      await until(() => counted() >= count, 15_000);
      assert.equal(counted(), count);
      // One line per status a second, none per request.
      const keys = lines().map((e) => `${e.status} ${e.time}`.slice(0, 23));
      assert.equal(new Set(keys).size, keys.length, keys.join());
      assert.ok(lines().length <= 4 * (seconds + 2), `${lines().length}`);
      assert.ok(
        !stack.stdout.some((l) => /"status":4\d\d/.test(l)),
        "no access-log line per refused request",
      );
    }),
});

Deno.test({
  name:
    "a body over 1k writes no error-log line: the stack's own errors still show",
  ignore: !ready,
  fn: () =>
    withStack({ RATE_LIMIT: "0" }, async (stack) => {
      // A missing static file: nginx logs an error for each request of it.
      const missing = STATIC_PATHS[0];
      await Deno.remove(runtimeLayout(stack.runtimeDir).public + missing);
      const big = request(
        "POST /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 2000",
        "a".repeat(2000),
      );
      const statuses: number[] = [];
      const flood = Promise.all(Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 40; i++) {
          statuses.push(parseAnswer(await exchange(stack.port, big)).status);
        }
      }));
      for (let i = 0; i < 5; i++) {
        const res = await fetch(stack.url + missing);
        await res.body?.cancel();
        assert.equal(res.status, 404);
      }
      await flood;
      assert.deepEqual(new Set(statuses), new Set([413]));
      const missed = () =>
        logEntries(stack.stderr).filter((e) =>
          e.component === "nginx" && /No such file/.test(String(e.msg))
        ).length;
      await until(() => missed() >= 5, 10_000);
      assert.equal(missed(), 5);
      assert.ok(!stack.stderr.some((l) => /too large body|suppressed/.test(l)));
    }),
});

// FNV-1a of what a door serves, written again here: the URL must follow the
// bytes, whatever static_files.ts computes.
function fnv1a(data: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const byte of data) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, "0");
}

async function checkAssetUrls(base: string): Promise<void> {
  const page = await (await fetch(`${base}/`, {
    headers: { accept: "text/html" },
  })).text();
  const links = [...page.matchAll(/(?:src|href)="(\/static\/[^"]+)"/g)]
    .map((m) => m[1]);
  assert.equal(links.length, 2, "script and style");
  for (const link of links) {
    const url = new URL(link, base);
    const res = await fetch(url);
    assert.equal(res.status, 200, link);
    assert.match(res.headers.get("cache-control") ?? "", /immutable/);
    const served = new Uint8Array(await res.arrayBuffer());
    assert.equal(url.searchParams.get("v"), fnv1a(served), link);
  }
}

Deno.test("the page links script and style by a hash of their content, service alone", () =>
  withService((port) => checkAssetUrls(`http://127.0.0.1:${port}`)));

Deno.test({
  name: "the page links script and style by a hash of their content, stack",
  ignore: !ready,
  fn: () => withStack({}, (stack) => checkAssetUrls(stack.url)),
});

/**
 * The statuses of one curl from a source address: each group's `count`
 * requests with its headers, the groups one after another in one process,
 * so that no process start comes between them.
 */
async function statuses(
  url: string,
  from: string,
  ...groups: [headers: string[], count: number][]
): Promise<number[]> {
  const args = groups.flatMap(([headers, count], i) => [
    ...(i === 0 ? [] : ["--next"]),
    ...["-sS", "--interface", from, "-w", "%{http_code}\\n"],
    ...headers.flatMap((h) => ["-H", h]),
    // -o applies to the one URL after it.
    ...Array(count).fill(["-o", "/dev/null", url]).flat(),
  ]);
  const out = await new Deno.Command("curl", { args, stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").map(Number);
}

// One bucket per address the answers report: each row, right after that
// address's plain spelling (or, for the proxy itself, no header) has
// exhausted it, must find it exhausted (429). The bucket refills a request
// a second, so a stall that long between the two lets a row through: each
// row has three tries. A row limited under another address passes none of
// them (its own bucket lets 1 + burst 2 through).
Deno.test({
  name:
    "the stack limits each forwarding row under the address its answer reports",
  ignore: !needs("nginx", "curl"),
  fn: () =>
    withStack(
      { TRUSTED_PROXIES: TABLE_TRUSTED, RATE_LIMIT: "1" },
      async (stack) => {
        const url = `${stack.url}/ip`;
        const failures: string[] = [];
        for (const [lines, answer] of FORWARDING_CASES) {
          const plain = answer === TABLE_PEER
            ? []
            : [`X-Forwarded-For: ${answer}`];
          const headers = lines.map((l) => `X-Forwarded-For: ${l}`);
          let got: number[] = [];
          for (let tries = 0; tries < 3; tries++) {
            got = await statuses(url, TABLE_PEER, [plain, 5], [headers, 1]);
            if (got.at(-2) === 429 && got.at(-1) === 429) break;
          }
          if (got.at(-2) !== 429 || got.at(-1) !== 429) {
            failures.push(`${JSON.stringify(lines)} -> ${answer}: ${got}`);
          }
        }
        assert.deepEqual(failures, []);
      },
    ),
});

/** curl from a source address: one request's status and body. */
async function answer(
  url: string,
  from: string,
  forwardedFor: string,
  id = "",
): Promise<[number, string]> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--interface",
      from,
      "-w",
      "\\n%{http_code}",
      "-H",
      `X-Forwarded-For: ${forwardedFor}`,
      ...(id ? ["-H", `X-Request-Id: ${id}`] : []),
      url,
    ],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const end = text.lastIndexOf("\n");
  return [Number(text.slice(end + 1)), text.slice(0, end).trim()];
}

// The address a forwarded request is answered as, and the limits' key.
function clientOf(forwardedFor: string): [string, string] {
  const client = formatAddress(
    resolveClient(
      parseAddress(TABLE_PEER)!,
      splitForwardedFor(forwardedFor),
      TABLE_TRUSTED.split(",").map(parseRange),
    ),
  );
  const key = client.includes(":")
    ? (parseAddress(client) as ipaddr.IPv6).parts.slice(0, 4).join(":")
    : client;
  return [client, key];
}

// One client exhausts its bucket; every other spelling is then answered 429
// exactly when it is answered as a client of the same key, and else as
// itself. The IPv4-mapped spellings were all keyed as the /64 0:0:0:0.
Deno.test({
  name:
    "a client's burst limits only requests answered as the same client, however they spell it",
  ignore: !needs("nginx", "curl"),
  fn: () =>
    withStack(
      { TRUSTED_PROXIES: TABLE_TRUSTED, RATE_LIMIT: "1" },
      async (stack) => {
        const url = `${stack.url}/ip`;
        const bursts: [string, string[]][] = [
          ["::ffff:102:304", [
            "0:0::ffff:1.2.3.5",
            "::0:ffff:1.2.3.6",
            "[::ffff:102:307]:80",
            "::1.2.3.8",
            "::ffff:1.2.3.9",
            "[::ffff:1.2.3.10]:80",
            "1.2.3.11",
          ]],
          ["2001:db8:5::1", ["2001:db8:5::2", "[2001:db8:5:0:1::]:80"]],
          ["198.51.100.7", ["::ffff:198.51.100.7", "2001:db8:6::1"]],
        ];
        const failures: string[] = [];
        for (const [burst, others] of bursts) {
          const [, burstKey] = clientOf(burst);
          const first = await statuses(url, TABLE_PEER, [
            [`X-Forwarded-For: ${burst}`],
            5,
          ]);
          if (!first.includes(429)) failures.push(`${burst}: never limited`);
          for (const other of others) {
            const [client, key] = clientOf(other);
            const [status, body] = await answer(url, TABLE_PEER, other);
            const expected = key === burstKey ? [429] : [200, client];
            const got = key === burstKey ? [status] : [status, body];
            if (JSON.stringify(got) !== JSON.stringify(expected)) {
              failures.push(`after ${burst}, ${other}: ${got} not ${expected}`);
            }
          }
        }
        assert.deepEqual(failures, []);
      },
    ),
});

Deno.test({
  name: "the access log's client is the address the answer reports",
  ignore: !needs("nginx", "curl"),
  fn: () =>
    withStack(
      { TRUSTED_PROXIES: TABLE_TRUSTED, RATE_LIMIT: "0" },
      async (stack) => {
        const answers = new Map<string, string>();
        for (const [i, [lines]] of FORWARDING_CASES.entries()) {
          const [, body] = await answer(
            `${stack.url}/ip`,
            TABLE_PEER,
            lines.join(", "),
            `row-${i}`,
          );
          answers.set(`row-${i}`, body);
        }
        const logged = new Map<string, string>();
        const deadline = Date.now() + 15_000;
        while (logged.size < answers.size && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
          for (const line of stack.stdout) {
            const entry = JSON.parse(line);
            if (answers.has(entry.request_id)) {
              logged.set(entry.request_id, entry.client);
            }
          }
        }
        assert.deepEqual(
          Object.fromEntries(logged),
          Object.fromEntries(answers),
        );
      },
    ),
});

/** Runs a command; throws with its stderr when it fails. */
async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * A network namespace joined to this one by a veth pair: this side has
 * `fd00:19::1` and `fd00:19:0:1::1`, the namespace `count` addresses of
 * fd00:19::/64 (from `::100`) and one of fd00:19:0:1::/64. Removed after
 * `body`, whatever happens (the names carry the pid: runs never collide).
 */
async function withNeighbours(
  count: number,
  body: (ns: string, addresses: string[], other: string) => Promise<void>,
): Promise<void> {
  const ns = `ipts-${Deno.pid}`;
  const here = `ipts${Deno.pid}a`.slice(0, 15);
  const there = `ipts${Deno.pid}b`.slice(0, 15);
  const addresses = Array.from(
    { length: count },
    (_, i) => `fd00:19::${(0x100 + i).toString(16)}`,
  );
  const other = "fd00:19:0:1::2";
  try {
    await sh("ip", "netns", "add", ns);
    await sh("ip", "link", "add", here, "type", "veth", "peer", "name", there);
    await sh("ip", "link", "set", there, "netns", ns);
    for (const a of ["fd00:19::1/64", "fd00:19:0:1::1/64"]) {
      await sh("ip", "-6", "addr", "add", a, "dev", here, "nodad");
    }
    await sh("ip", "link", "set", here, "up");
    for (const a of [...addresses, other]) {
      await sh(
        "ip",
        "-n",
        ns,
        "-6",
        "addr",
        "add",
        `${a}/64`,
        "dev",
        there,
        "nodad",
      );
    }
    await sh("ip", "-n", ns, "link", "set", there, "up");
    await body(ns, addresses, other);
  } finally {
    // The namespace takes its end of the pair, and the pair goes with it.
    await sh("ip", "netns", "del", ns).catch(() => {});
    await sh("ip", "link", "del", here).catch(() => {});
  }
}

/** Statuses of `count` requests curl sends from `from` inside `ns`. */
async function statusesIn(
  ns: string,
  url: string,
  from: string,
  count: number,
): Promise<number[]> {
  const out = await sh(
    "ip",
    "netns",
    "exec",
    ns,
    "curl",
    "-sS",
    "--interface",
    from,
    "-w",
    "%{http_code}\\n",
    ...Array(count).fill(["-o", "/dev/null", url]).flat(),
  );
  return out.trim().split("\n").map(Number);
}

Deno.test({
  name:
    "the addresses of one IPv6 /64 share one rate limit; another /64 has its own",
  ignore: !needsRoot("make a network namespace (ip netns add)") ||
    !needs("nginx", "curl", "ip"),
  fn: () =>
    withNeighbours(
      16,
      (ns, addresses, other) =>
        withStack({ RATE_LIMIT: "5" }, async (stack) => {
          const url = `http://[fd00:19::1]:${stack.port}/ip`;
          const start = Date.now();
          let served = 0;
          for (const from of addresses) {
            const got = await statusesIn(ns, url, from, 10);
            served += got.filter((s) => s === 200).length;
          }
          const seconds = Math.ceil((Date.now() - start) / 1000);
          // 1 + burst 10 at once, then 5 a second: per address this
          // would be 16 times that.
          const allowed = 1 + 10 + 5 * seconds;
          assert.ok(
            served <= allowed,
            `${served} answers for one /64 in ${seconds} s, at most ${allowed}`,
          );
          // The neighbour in another /64 is served all the same.
          const neighbour = await statusesIn(ns, url, other, 5);
          assert.deepEqual(neighbour, [200, 200, 200, 200, 200]);
        }),
    ),
});

// With bodies refused at once, a request is in progress while a worker
// answers it; limit_conn caps how many one client may have waiting, so a
// slow or hung worker is not filled by one address.
Deno.test({
  name:
    "one client may have max(32, RATE_LIMIT) requests in progress; more are answered 429 at once",
  ignore: !ready,
  fn: () =>
    withStack({ WORKERS: "1", RATE_LIMIT: "20" }, async (stack) => {
      const socket = workerSocket(stack.runtimeDir, 0);
      const found = await new Deno.Command("pgrep", {
        args: ["-f", `allow-net=unix:${socket} `],
        stdout: "piped",
      }).output();
      const [pid] = new TextDecoder().decode(found.stdout).split("\n")
        .filter(Boolean).map(Number);
      assert.ok(pid, "the worker runs");
      // 40 requests at once (within RATE_LIMIT's burst of 40): 32 wait for
      // the stopped worker, 8 are over the limit.
      Deno.kill(pid, "SIGSTOP");
      const conns: Deno.Conn[] = [];
      try {
        for (let i = 0; i < 40; i++) {
          conns.push(
            await Deno.connect({ hostname: "127.0.0.1", port: stack.port }),
          );
        }
        const inputs = conns.map(reader);
        await Promise.all(conns.map((c) => c.write(get("Host: x"))));
        const limited = () =>
          inputs.filter((i) => i.text.startsWith("HTTP/1.1 429 ")).length;
        await inputs[0].until(() => limited() >= 8, 5_000);
        assert.equal(limited(), 8, "over the limit: answered at once");
        Deno.kill(pid, "SIGCONT");
        // The others are served once the worker goes on.
        await inputs[0].until(
          () => inputs.filter((i) => i.closed).length === 40,
          15_000,
        );
        const ok = inputs.filter((i) => i.text.startsWith("HTTP/1.1 200 "));
        assert.equal(ok.length, 32);
      } finally {
        try {
          Deno.kill(pid, "SIGCONT");
        } catch {
          // Replaced by the supervisor meanwhile.
        }
        for (const c of conns) {
          try {
            c.close();
          } catch {
            // Closed by the server.
          }
        }
      }
    }),
});
