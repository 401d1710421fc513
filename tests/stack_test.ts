// The production stack with real nginx: the contract through nginx, the
// client-address trust model, bad requests, and faults under real load.
import assert from "node:assert/strict";
import {
  freePort,
  needs,
  needsRoot,
  onFreePort,
  openTempDir,
  PortTaken,
  PROJECT_DIR,
  rawRequest,
  run,
  type Running,
  saysPortTaken,
  type Stack,
  STACK_UID,
  stackCommand,
  stackExit,
  staleSocket,
  startStack,
  stdoutOf,
  supervisorPid,
  withStack,
} from "./test_util.ts";
import { COMMON_HEADERS } from "../service/common_headers.ts";
import {
  FORWARDING_CASES,
  TABLE_PEER,
  TABLE_TRUSTED,
} from "./forwarding_cases.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import { bundle } from "../tasks/bundle.ts";
import { wrk } from "../testing/wrk.ts";
import { bytesOf, contentTime, STATIC_FILES } from "../service/static_files.ts";

const ready = needs(
  "nginx",
  "curl",
  "mount",
  "umount",
  "runuser",
  "pgrep",
  "ps",
  "find",
);

/** curl, for what fetch cannot do (bind a source address). */
function curl(...args: string[]): Promise<string> {
  return stdoutOf("curl", ["-sS", ...args]);
}

/** Waits until nginx has logged `count` answers to `GET /`: load is on. */
async function loadRunning(stack: Stack, count = 200): Promise<void> {
  const deadline = Date.now() + 10_000;
  const answered = () =>
    stack.stdout.filter((l) =>
      l.startsWith('{"time"') && l.includes('"path":"/"')
    ).length;
  while (answered() < count) {
    assert.ok(Date.now() < deadline, `load did not start: ${answered()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name: "the stack serves the whole contract on IPv4 and IPv6",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      for (
        const [base, ip] of [[stack.url, "127.0.0.1"], [
          `http://[::1]:${stack.port}`,
          "::1",
        ]]
      ) {
        let res = await fetch(`${base}/`, {
          headers: { "x-request-id": "stack-test-1" },
        });
        const json = await res.json();
        assert.deepEqual(Object.keys(json), ["timestamp", "ip"]);
        assert.equal(json.ip, ip);
        assert.equal(res.headers.get("x-request-id"), "stack-test-1");
        assert.equal(res.headers.get("cache-control"), "no-store");
        assert.equal(
          res.headers.get("server"),
          "nginx",
          "no version in Server",
        );
        assert.equal(await (await fetch(`${base}/ip`)).text(), ip + "\n");
        res = await fetch(`${base}/timestamp?format=json`);
        assert.equal(typeof (await res.json()).unix_ms, "number");
        assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), {
          status: "ok",
        });
        assert.equal(
          (await (await fetch(`${base}/openapi.json`)).json()).openapi,
          "3.1.0",
        );
        res = await fetch(`${base}/ip`, { method: "HEAD" });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "");
        res = await fetch(`${base}/`, { method: "OPTIONS" });
        assert.equal(res.status, 204);
        await res.body?.cancel();
        res = await fetch(`${base}/ip`, { method: "DELETE" });
        assert.equal(res.status, 405);
        assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
        await res.body?.cancel();
        res = await fetch(`${base}/nope`);
        assert.equal(res.status, 404);
        assert.deepEqual(await res.json(), { error: "Not found" });
      }
    }),
});

Deno.test({
  name: "through the stack every answer carries each common header once",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      // Worker answers (nginx adds the headers) and nginx's own errors.
      const cases: [string, string, number][] = [
        ["GET", "/", 200],
        ["GET", "/?format=html", 200],
        ["GET", "/ip", 200],
        ["HEAD", "/timestamp", 200],
        ["GET", "/healthz", 200],
        ["GET", "/openapi.json", 200],
        ["OPTIONS", "/", 204],
        ["DELETE", "/ip", 405],
        ["GET", "/nope", 404],
        ["GET", "/ip?format=bad", 400],
        ["TRACE", "/", 405],
      ];
      for (const [method, path, status] of cases) {
        const what = `${method} ${path}`;
        const answer = await rawRequest(
          stack.port,
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: once-1\r\n` +
            "Connection: close\r\n\r\n",
        );
        assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), what);
        const head = answer.slice(0, answer.indexOf("\r\n\r\n")).split("\r\n");
        const values = (name: string) =>
          head.filter((l) =>
            l.toLowerCase().startsWith(name.toLowerCase() + ":")
          )
            .map((l) => l.slice(name.length + 1).trim());
        for (const [name, value] of Object.entries(COMMON_HEADERS)) {
          assert.deepEqual(values(name), [value], `${what}: ${name}`);
        }
        assert.deepEqual(values("X-Request-Id"), ["once-1"], what);
      }
    }),
});

Deno.test({
  name: "nginx serves the static files itself, with caching",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      let res = await fetch(`${stack.url}/static/style.css?v=1`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/css; charset=utf-8");
      assert.match(res.headers.get("cache-control")!, /immutable/);
      await res.body?.cancel();
      res = await fetch(`${stack.url}/favicon.ico`);
      assert.equal(res.headers.get("content-type"), "image/x-icon");
      assert.match(res.headers.get("cache-control")!, /max-age=86400/);
      await res.body?.cancel();
      res = await fetch(`${stack.url}/static/missing.js`);
      assert.equal(res.status, 404);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.deepEqual(await res.json(), { error: "Not found" });
      // Static answers never reach a worker: the access log shows no upstream.
      await stack.stop();
      const line = stack.stdout.find((l) =>
        l.includes('"path":"/favicon.ico"')
      );
      assert.ok(line, "access log line for the favicon");
      assert.equal(JSON.parse(line).upstream_time, "");
    }),
});

Deno.test({
  name:
    "static files' ETag and Last-Modified come from their content, not the start",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      for (const [path, file] of STATIC_FILES) {
        const time = contentTime(file);
        // nginx's ETag: the mtime in seconds and the size, in hex.
        const etag = `"${(time.getTime() / 1000).toString(16)}-${
          bytesOf(file).length.toString(16)
        }"`;
        let res = await fetch(stack.url + path);
        await res.body?.cancel();
        assert.equal(res.headers.get("etag"), etag, path);
        assert.equal(res.headers.get("last-modified"), time.toUTCString());
        res = await fetch(stack.url + path, {
          headers: { "if-none-match": etag },
        });
        assert.equal(res.status, 304, path);
        assert.equal(res.headers.get("cache-control"), file.cacheControl);
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        await res.body?.cancel();
      }
    }),
});

Deno.test({
  name: "forged forwarding headers from an untrusted client are ignored",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const forged = [
        "X-Forwarded-For: 1.1.1.1",
        "X-Forwarded-For: 2.2.2.2, 3.3.3.3",
        "X-Real-IP: 4.4.4.4",
        "X-Real-IP: 5.5.5.5",
        'Forwarded: for="[2001:db8::1]:80"',
        "Forwarded: for=6.6.6.6",
        "CF-Connecting-IP: 7.7.7.7",
        "True-Client-IP: 8.8.8.8",
        "X-Forwarded-For: <script>alert(1)</script>",
        "X-Real-IP: ",
      ];
      const sets = [
        forged,
        forged.slice(0, 1),
        forged.slice(2, 4),
        forged.slice(4, 6),
        forged.slice(8),
      ];
      for (const headers of sets) {
        const answer = await rawRequest(
          stack.port,
          `GET /ip HTTP/1.1\r\nHost: x\r\n${
            headers.join("\r\n")
          }\r\nConnection: close\r\n\r\n`,
        );
        assert.match(answer, /^HTTP\/1\.1 200/);
        assert.ok(answer.endsWith("\r\n\r\n127.0.0.1\n"), answer);
      }
    }),
});

Deno.test({
  name: "with TRUSTED_PROXIES, the client behind a trusted proxy is reported",
  ignore: !ready,
  fn: () =>
    withStack({ TRUSTED_PROXIES: "127.0.0.2" }, async (stack) => {
      const url = `${stack.url}/ip`;
      // From the trusted proxy's address: its forwarded client counts.
      assert.equal(
        await curl(
          "--interface",
          "127.0.0.2",
          "-H",
          "X-Forwarded-For: 6.6.6.6, 198.51.100.9",
          url,
        ),
        "198.51.100.9\n",
      );
      // Junk from the trusted proxy: its own address, never the junk.
      assert.equal(
        await curl(
          "--interface",
          "127.0.0.2",
          "-H",
          "X-Forwarded-For: not-an-ip",
          url,
        ),
        "127.0.0.2\n",
      );
      // From anywhere else the header is still ignored.
      assert.equal(
        await curl(
          "--interface",
          "127.0.0.1",
          "-H",
          "X-Forwarded-For: 198.51.100.9",
          url,
        ),
        "127.0.0.1\n",
      );
    }),
});

Deno.test({
  name: "the forwarding table, through the stack: the service's answers",
  ignore: !ready,
  fn: () =>
    withStack({ TRUSTED_PROXIES: TABLE_TRUSTED }, async (stack) => {
      for (const [lines, expected] of FORWARDING_CASES) {
        const answer = await curl(
          "--interface",
          TABLE_PEER,
          ...lines.flatMap((l) => ["-H", `X-Forwarded-For: ${l}`]),
          `${stack.url}/ip`,
        );
        assert.equal(answer, expected + "\n", JSON.stringify(lines));
      }
      // From an untrusted address the header is not read at all.
      assert.equal(
        await curl("-H", "X-Forwarded-For: 198.51.100.9", `${stack.url}/ip`),
        "127.0.0.1\n",
      );
    }),
});

Deno.test({
  name: "bad requests get JSON 4xx answers and the stack keeps serving",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const cases: [string, number, string][] = [
        [
          `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
          414,
          "URI too long",
        ],
        [
          `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(9000)}\r\n\r\n`,
          431,
          "Request header fields too large",
        ],
        [
          `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n${
            "a".repeat(5000)
          }`,
          413,
          "Request body too large: the API takes no body",
        ],
        ["GARBAGE\r\n\r\n", 400, "Bad request"],
        ["get / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"],
        ["GET / HTTP/1.1\r\n\r\n", 400, "Bad request"],
        ["TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "Method not allowed"],
        [
          "POST /ip HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
          413,
          "Request body too large: the API takes no body",
        ],
        [
          "BREW / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          405,
          "Method not allowed",
        ],
      ];
      for (const [request, status, error] of cases) {
        const answer = await rawRequest(stack.port, request);
        assert.match(
          answer,
          new RegExp(`^HTTP/1\\.1 ${status} `),
          JSON.stringify(request.slice(0, 40)),
        );
        const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
        assert.deepEqual(JSON.parse(body), { error });
        assert.match(answer, /content-type: application\/json/i);
        assert.match(answer, /x-content-type-options: nosniff/i);
      }
      assert.equal(
        (await (await fetch(`${stack.url}/healthz`)).json()).status,
        "ok",
      );
    }),
});

Deno.test({
  name: "the per-client rate limit answers 429 with JSON and Retry-After",
  ignore: !ready,
  fn: () =>
    withStack({ RATE_LIMIT: "5" }, async (stack) => {
      const statuses: number[] = [];
      let limited: Response | undefined;
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${stack.url}/ip`);
        statuses.push(res.status);
        if (res.status === 429 && !limited) limited = res;
        else await res.body?.cancel();
      }
      assert.ok(statuses.includes(200) && limited, statuses.join(","));
      assert.equal(limited.headers.get("retry-after"), "1");
      assert.deepEqual(await limited.json(), { error: "Too many requests" });
    }),
});

Deno.test({
  name:
    "access log lines are JSON with the request id nginx passed to the worker",
  ignore: !ready,
  fn: async () => {
    const stack = await startStack();
    try {
      const res = await fetch(`${stack.url}/ip?x=1`, {
        headers: { "x-request-id": "log-me-42" },
      });
      assert.equal(res.headers.get("x-request-id"), "log-me-42");
      await res.body?.cancel();
      const other = await fetch(`${stack.url}/ip`, {
        headers: { "x-request-id": "bad id!" },
      });
      assert.match(other.headers.get("x-request-id")!, /^[0-9a-f]{32}$/);
      await other.body?.cancel();
    } finally {
      await stack.stop();
      await stack.cleanup();
    }
    const line = stack.stdout.find((l) => l.includes("log-me-42"));
    assert.ok(line);
    const entry = JSON.parse(line);
    assert.equal(entry.method, "GET");
    assert.equal(entry.path, "/ip");
    assert.equal(entry.status, 200);
    assert.equal(entry.client, "127.0.0.1");
    assert.match(entry.upstream_time, /^\d+\.\d+$/);
  },
});

Deno.test({
  name:
    "SIGTERM under load drains: every request nginx took is answered, exit 0",
  ignore: !ready || !needs("wrk"),
  fn: async () => {
    const stack = await startStack();
    try {
      const load = wrk(`${stack.url}/`, { connections: 32, seconds: 4 });
      await loadRunning(stack);
      const code = await stack.stop();
      const result = await load;
      assert.equal(code, 0);
      const logged = stack.stdout.filter((l) =>
        l.startsWith('{"time"') && l.includes('"path":"/"')
      )
        .map((l) => JSON.parse(l));
      // Nothing failed inside the stack, and the client got every answer
      // nginx logged; what wrk counts beyond that are connections the closed
      // listener refused after the signal.
      assert.deepEqual(logged.filter((e) => e.status !== 200), []);
      assert.equal(result.non2xx, 0);
      assert.equal(result.errors.timeout, 0);
      assert.equal(result.requests, logged.length, JSON.stringify(result));
      for (
        const file of [
          workerSocket(stack.runtimeDir, 0),
          workerSocket(stack.runtimeDir, 1),
          runtimeLayout(stack.runtimeDir).nginxPid,
        ]
      ) {
        await assert.rejects(
          Deno.lstat(file),
          Deno.errors.NotFound,
          file,
        );
      }
    } finally {
      await stack.stop();
      await stack.cleanup();
    }
  },
});

Deno.test({
  name:
    "kill -9 of a worker under load loses no request and the worker comes back",
  ignore: !ready || !needs("wrk"),
  fn: () =>
    withStack({}, async (stack) => {
      const load = wrk(`${stack.url}/`, { connections: 32, seconds: 4 });
      await loadRunning(stack);
      const socket = workerSocket(stack.runtimeDir, 0);
      // The worker is the deno process whose flags name its socket.
      const out = await stdoutOf("pgrep", ["-f", `allow-net=unix:${socket} `]);
      const pids = out.trim().split("\n")
        .filter(Boolean);
      assert.equal(pids.length, 1, `one worker-0 process: ${pids}`);
      Deno.kill(Number(pids[0]), "SIGKILL");
      const result = await load;
      assert.ok(result.requests > 100);
      assert.equal(result.non2xx, 0, JSON.stringify(result));
      assert.deepEqual(result.errors, {
        connect: 0,
        read: 0,
        write: 0,
        timeout: 0,
      });
      await stack.waitFor(/"msg":"worker 0 restarted"/);
      const died = JSON.parse(
        stack.stderr.find((l) => l.includes("worker 0 killed by SIGKILL"))!,
      );
      assert.equal(died.worker, 0);
      assert.equal(died.level, "error");
    }),
});

Deno.test({
  name: "if nginx dies, it is restarted like a worker and serving resumes",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const pidFile = runtimeLayout(stack.runtimeDir).nginxPid;
      const pid = Number(await Deno.readTextFile(pidFile));
      Deno.kill(pid, "SIGKILL");
      await stack.waitFor(/"msg":"nginx restarted"/);
      assert.notEqual(Number(await Deno.readTextFile(pidFile)), pid);
      const res = await fetch(`${stack.url}/healthz`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const died = JSON.parse(
        stack.stderr.find((l) => l.includes("nginx killed by SIGKILL"))!,
      );
      assert.equal(died.component, "nginx");
      // Its old worker processes went with it: one nginx master, one group.
      const masters = await stdoutOf("pgrep", [
        "-f",
        `nginx -c ${stack.runtimeDir}/`,
      ]);
      assert.equal(masters.trim().split("\n").length, 1, masters);
    }),
});

Deno.test({
  name: "a stale socket left by a crash does not stop a restart",
  ignore: !ready,
  fn: async () => {
    const first = await startStack();
    try {
      // A crash: the supervisor killed outright leaves its directory.
      Deno.kill(await supervisorPid(first.child), "SIGKILL");
      await first.child.status;
      await first.drained;
      // Its children die with it; then a socket nobody listens on.
      for (let i = 0; i < 200; i++) {
        if ((await stdoutOf("pgrep", ["-f", first.runtimeDir])) === "") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await staleSocket(workerSocket(first.runtimeDir, 0));
      assert.ok((await Deno.lstat(workerSocket(first.runtimeDir, 0))).isSocket);
      await withStack({ RUNTIME_DIR: first.runtimeDir }, async (stack) => {
        assert.equal(
          (await (await fetch(`${stack.url}/healthz`)).json()).status,
          "ok",
        );
      });
    } finally {
      await first.cleanup();
    }
  },
});

/** Asserts one JSON log line naming `setting`, exit code 2. */
function assertRefused(
  result: { code: number; lines: string[]; proc: { stderr: string[] } },
  setting: string,
) {
  assert.equal(result.code, 2, result.proc.stderr.join("\n"));
  assert.equal(result.lines.length, 1, result.proc.stderr.join("\n"));
  assert.match(
    JSON.parse(result.lines[0]).msg,
    new RegExp(`^Invalid ${setting}`),
  );
  assert.equal(result.proc.stderr.length, 1, "nothing but that line");
}

Deno.test({
  name:
    "a planted runtime directory is refused: no link followed, nothing chowned",
  ignore: !ready,
  fn: async () => {
    const base = await openTempDir("ip-timestamp-planted-");
    const mine = (path: string) => Deno.chown(path, STACK_UID, STACK_UID);
    try {
      const victim = `${base}/victim.conf`;
      await Deno.writeTextFile(victim, "keep me");
      // Made by another user before the stack's first start, as anyone can
      // in /tmp (only root can make one of another user's here).
      const planted = `${base}/run`;
      await Deno.mkdir(`${planted}/public`, { recursive: true });
      await Deno.symlink(victim, `${planted}/nginx.conf`);
      await Deno.chown(planted, 4242, 4242).catch(() => {});
      // One of the stack's own user, with a directory where it writes a file.
      const own = `${base}/own`;
      await Deno.mkdir(`${own}/nginx.conf`, { recursive: true, mode: 0o755 });
      await Deno.chmod(own, 0o755);
      await mine(own);
      // And a shared directory, writable by all like /tmp.
      const shared = `${base}/shared`;
      await Deno.mkdir(shared);
      await Deno.chmod(shared, 0o1777);
      const dirs = [own, shared, "/tmp"];
      if (Deno.uid() === 0) dirs.push(planted);
      for (const dir of dirs) {
        assertRefused(await stackExit({ RUNTIME_DIR: dir }), "RUNTIME_DIR");
      }
      assert.equal(await Deno.readTextFile(victim), "keep me");
      assert.equal((await Deno.stat(shared)).mode! & 0o7777, 0o1777);
      assert.deepEqual([...Deno.readDirSync(shared)], []);
      assert.deepEqual([...Deno.readDirSync(own)].map((e) => e.name), [
        "nginx.conf",
      ]);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name: "the workers' sockets are closed to every other user",
  ignore: !ready || !needsRoot("try the sockets as another user (runuser)") ||
    !needs("runuser"),
  fn: () =>
    withStack({}, async (stack) => {
      const socket = workerSocket(stack.runtimeDir, 0);
      // Whoever runs as another user cannot reach a worker, and so cannot
      // tell it a client address.
      const out = await new Deno.Command("runuser", {
        args: [
          "-u",
          "daemon",
          "--",
          "curl",
          "-sS",
          "--unix-socket",
          socket,
          "-H",
          "X-Real-IP: 6.6.6.6",
          "http://x/ip",
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      assert.equal(new TextDecoder().decode(out.stdout), "");
      assert.notEqual(out.code, 0);
      assert.equal(
        await (await fetch(`${stack.url}/ip`)).text(),
        "127.0.0.1\n",
      );
    }),
});

Deno.test({
  name: "a full disk under RUNTIME_DIR: one line, exit 2, nothing left behind",
  ignore: !ready || !needsRoot("mount a full tmpfs"),
  fn: async () => {
    const mount = await openTempDir("ip-timestamp-full-");
    // Room for nginx.conf, not for all the static files.
    const mounted = await new Deno.Command("mount", {
      args: [
        "-t",
        "tmpfs",
        "-o",
        `size=16k,mode=0755,uid=${STACK_UID},gid=${STACK_UID}`,
        "tmpfs",
        mount,
      ],
    }).output();
    assert.ok(mounted.success, new TextDecoder().decode(mounted.stderr));
    try {
      const result = await stackExit({ RUNTIME_DIR: `${mount}/run` });
      assertRefused(result, "RUNTIME_DIR");
      assert.match(JSON.parse(result.lines[0]).msg, /no space/i);
      assert.deepEqual([...Deno.readDirSync(mount)], []);
      assert.equal(await stdoutOf("pgrep", ["-f", mount]), "");
    } finally {
      await new Deno.Command("umount", { args: [mount] }).output();
      await Deno.remove(mount, { recursive: true });
    }
  },
});

Deno.test({
  name: "a PORT held by another program: one line naming PORT, exit 2",
  ignore: !ready,
  fn: async () => {
    const base = await openTempDir("ip-timestamp-port-");
    const holder = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    try {
      const port = (holder.addr as Deno.NetAddr).port;
      const result = await stackExit({
        PORT: String(port),
        RUNTIME_DIR: `${base}/run`,
      });
      assertRefused(result, "PORT");
      assert.match(JSON.parse(result.lines[0]).msg, new RegExp(`${port}`));
      assert.deepEqual([...Deno.readDirSync(base)], [], "nothing written");
      assert.equal(await stdoutOf("pgrep", ["-f", base]), "");
    } finally {
      holder.close();
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "startStack takes another port when its port is taken, and leaves nothing when a start fails",
  ignore: !ready,
  fn: async () => {
    // Its temp directories go here, where no other test's do.
    const tempRoot = await openTempDir("ip-timestamp-root-");
    const holder = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const held = (holder.addr as Deno.NetAddr).port;
    try {
      // The race: a port free when probed, taken by the time nginx binds.
      const ports = [held];
      const stack = await startStack({}, {
        ports: () => ports.shift() ?? freePort(),
        tempRoot,
      });
      try {
        assert.notEqual(stack.port, held);
        assert.equal((await fetch(`${stack.url}/healthz`)).status, 200);
      } finally {
        await stack.stop();
        await stack.cleanup();
      }
      assert.deepEqual([...Deno.readDirSync(tempRoot)], []);
      await assert.rejects(startStack({ PORT: String(held) }, { tempRoot }));
      assert.deepEqual([...Deno.readDirSync(tempRoot)], [], "left behind");
      assert.equal(await stdoutOf("pgrep", ["-f", tempRoot]), "");
    } finally {
      holder.close();
      await Deno.remove(tempRoot, { recursive: true });
    }
  },
});

Deno.test({
  name: "a stack given a prebuilt WORKER_BUNDLE runs it, as the image does",
  ignore: !ready,
  fn: async () => {
    // As the image ships it: main.ts bundled once (tasks/bundle.ts).
    const dir = await openTempDir("ip-timestamp-bundle-");
    const program = `${dir}/app/worker.js`;
    try {
      await bundle(`${dir}/app`, `${dir}/app/geo.mmdb`);
      // A mark that the bundle the tests' root stacks run lacks.
      const mark = "\n// the prebuilt bundle\n";
      await Deno.writeTextFile(program, mark, { append: true });
      await withStack({ WORKER_BUNDLE: program }, async (stack) => {
        const answer = await (await fetch(`${stack.url}/`)).json();
        assert.deepEqual(Object.keys(answer), ["timestamp", "ip"]);
        const workers = await stdoutOf("pgrep", ["-fc", ` ${program}$`]);
        assert.equal(workers.trim(), "2", "both workers run the bundle");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "bad stack settings and a missing nginx stop the start with exit code 2",
  ignore: !ready,
  fn: async () => {
    for (
      const [env, setting] of [
        [{ WORKERS: "0" }, "WORKERS"],
        [{ TRUSTED_PROXIES: "10.0.0.0/99" }, "TRUSTED_PROXIES"],
        [{ RATE_LIMIT: "-1" }, "RATE_LIMIT"],
        [{ IPV4_ORIGIN: "https://v4.example.com/x" }, "IPV4_ORIGIN"],
        [
          { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
          "OTEL_EXPORTER_OTLP_PROTOCOL",
        ],
        [{ WORKER_BUNDLE: "worker.js" }, "WORKER_BUNDLE"],
        [
          { WORKER_BUNDLE: "/proc/no-such-dir/worker.js" },
          "WORKER_BUNDLE",
        ],
        // A zone id was once stripped for validation but rendered as given.
        [
          { TRUSTED_PROXIES: "fe80::1%eth0;set_real_ip_from 127.0.0.1" },
          "TRUSTED_PROXIES",
        ],
        [{ TRUSTED_PROXIES: "10.0.0.0/8;allow all" }, "TRUSTED_PROXIES"],
        [{ RUNTIME_DIR: "/tmp/x;y" }, "RUNTIME_DIR"],
        [{ PORT: "8080;" }, "PORT"],
        // Its sockets' paths would not fit a Unix socket address.
        [{ RUNTIME_DIR: `/tmp/${"d".repeat(100)}` }, "RUNTIME_DIR"],
      ] as [Record<string, string>, string][]
    ) {
      assertRefused(await stackExit(env), setting);
    }
    // Without nginx on PATH: how to get it, and exit 2. (`deno task stack`
    // would add /usr/sbin to PATH.)
    const flags =
      (await stdoutOf(Deno.execPath(), ["task", "-q", "flags", "stack"]))
        .trim().split(" ");
    const proc = Deno.uid() !== STACK_UID
      ? (await stackExit({ PATH: "/nonexistent" })).proc
      : run(Deno.execPath(), ["run", ...flags, "stack.ts"], {
        env: { PATH: "/nonexistent" },
      });
    assert.equal((await proc.child.status).code, 2);
    await proc.drained;
    // One line, the supervisor's, saying what to install.
    assert.equal(proc.stderr.length, 1, proc.stderr.join("\n"));
    assert.match(proc.stderr[0], /apt-get install nginx-light/);
  },
});

Deno.test({
  name:
    "the stack runs as an unprivileged user and writes only its runtime directory",
  ignore: !ready || !needsRoot("create the stack's user"),
  fn: async () => {
    // A name of its own: another run on the machine may have its user.
    const user = `ipts-test-${Deno.pid}`;
    await mustRun("useradd", [
      "--system",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      user,
    ]);
    const base = await Deno.makeTempDir({ prefix: "ip-timestamp-user-" });
    const runtimeDir = `${base}-runtime`;
    try {
      await asUser(user, base, runtimeDir);
    } finally {
      await mustRun("userdel", [user]);
      await Deno.remove(base, { recursive: true });
      await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
    }
  },
});

/** Runs a command to its end and fails the test if it fails. */
async function mustRun(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    ...options,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(
    out.success,
    `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
  );
}

// A copy of the project and a dependency cache under `base` that any user
// may read, not write; then a marker file to find what is written after it.
async function readOnlyCopy(
  base: string,
): Promise<{ app: string; denoDir: string; marker: string }> {
  await Deno.chmod(base, 0o755);
  // A copy of the project and a dependency cache the user may read, not write.
  const app = `${base}/app`;
  await mustRun("cp", ["-r", PROJECT_DIR, app]);
  const denoDir = `${base}/deno`;
  await mustRun(Deno.execPath(), [
    "cache",
    "--frozen",
    "main.ts",
    "stack.ts",
    "tasks/flags.ts",
  ], { cwd: app, env: { DENO_DIR: denoDir } });
  await mustRun("chmod", ["-R", "a+rX,go-w", base]);
  const marker = `${base}/marker`;
  await Deno.writeTextFile(marker, "");
  // Files written in the marker's second would not count as newer.
  await new Promise((r) => setTimeout(r, 1100));
  return { app, denoDir, marker };
}

/** The stack started by `user` from a read-only copy under `base`. */
async function asUser(user: string, base: string, runtimeDir: string) {
  const { app, denoDir, marker } = await readOnlyCopy(base);
  const { proc, port } = await onFreePort(async (port) => {
    const proc = await startAsUser(user, app, denoDir, port, runtimeDir);
    try {
      await proc.waitFor(/"msg":"ready"/, 30_000);
      return { proc, port };
    } catch (err) {
      await stopAsUser(user, proc);
      await proc.drained;
      if (saysPortTaken([...proc.stdout, ...proc.stderr])) {
        throw new PortTaken(String(err));
      }
      throw err;
    }
  });
  try {
    assert.equal(
      await (await fetch(`http://127.0.0.1:${port}/ip`)).text(),
      "127.0.0.1\n",
    );
    // Every process of the stack runs as the user.
    const ps = await stdoutOf("ps", ["-u", user, "-o", "comm="]);
    const names = ps.trim().split("\n");
    // nginx: the master and one process, half of WORKERS=2.
    assert.equal(
      names.filter((n) => n === "nginx").length,
      2,
      names.join(","),
    );
    assert.ok(names.filter((n) => n === "deno").length >= 3, names.join(","));
    // As root there is only runuser itself, which started it.
    const rootPs = await stdoutOf("ps", ["-u", "root", "-o", "comm=,args="]);
    const asRoot = rootPs.split("\n")
      .filter((l) => l.includes(runtimeDir) && !l.startsWith("runuser"));
    assert.deepEqual(asRoot, [], "nothing of the stack runs as root");
  } finally {
    await stopAsUser(user, proc);
  }
  assert.equal((await proc.child.status).code, 0);
  await proc.drained;
  await assertWroteNothingElse(user, marker, runtimeDir);
}

/** `deno task stack` run by `user` in `app`, on `port`. */
async function startAsUser(
  user: string,
  app: string,
  denoDir: string,
  port: number,
  runtimeDir: string,
): Promise<Running> {
  const { cmd, args, ...opts } = await stackCommand(port, runtimeDir, {
    via: ["runuser", "-u", user, "--"],
    cwd: app,
    env: {
      HOME: "/nonexistent",
      DENO_DIR: denoDir,
      PATH: Deno.env.get("PATH") ?? "",
      RATE_LIMIT: "",
    },
  });
  return run(cmd, args, opts);
}

/** Stops what {@linkcode startAsUser} started, and waits for runuser. */
async function stopAsUser(user: string, proc: Running): Promise<void> {
  // runuser does not pass signals on: stop the user's `deno task`.
  const task = await stdoutOf("pgrep", ["-u", user, "-f", "task -q stack"]);
  for (
    const pid of task.split("\n").filter(
      Boolean,
    )
  ) {
    Deno.kill(Number(pid), "SIGTERM");
  }
  // Before the user goes: userdel refuses a user that still runs.
  await proc.child.status;
}

async function assertWroteNothingElse(
  user: string,
  marker: string,
  runtimeDir: string,
): Promise<void> {
  const found = await stdoutOf("find", [
    "/",
    "-xdev",
    "-user",
    user,
    "-newer",
    marker,
    "-not",
    "-path",
    `${runtimeDir}*`,
    "-not",
    "-path",
    "/proc/*",
  ]);
  assert.equal(
    found.trim(),
    "",
    "files written outside the runtime directory",
  );
}
