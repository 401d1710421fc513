// The service as a real process: `deno task start` on TCP and on a Unix
// socket, with its production permission flags, settings and signals.
import assert from "node:assert/strict";
import { listenTcp } from "../main.ts";
import { loadServiceConfig } from "../service/config.ts";
import {
  denoTask,
  freePort,
  listening,
  needs,
  needsRoot,
  onFreePort,
  run,
  type Running,
  staleSocket,
  stdoutOf,
  until,
  withTempDir,
} from "./test_util.ts";
import {
  FORWARDING_CASES,
  TABLE_PEER,
  TABLE_TRUSTED,
} from "./forwarding_cases.ts";

function started(env: Record<string, string>): Promise<Running> {
  return listening(denoTask("start", env));
}

/** The service on TCP at 127.0.0.1 (or `host`), on a port free for it. */
function startedOnPort(
  env: Record<string, string> = {},
  host = "127.0.0.1",
): Promise<{ proc: Running; port: number }> {
  return onFreePort(async (port) => ({
    proc: await started({ HOST: host, ...env, PORT: String(port) }),
    port,
  }));
}

async function stopped(proc: Running, signal: Deno.Signal = "SIGTERM") {
  proc.child.kill(signal);
  const status = await proc.child.status;
  await proc.drained;
  return status;
}

/** One HTTP/1.1 request to a Unix socket's path or a port on 127.0.0.1. */
async function rawGet(
  to: string | number,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; head: string }> {
  const conn = typeof to === "string"
    ? await Deno.connect({ transport: "unix", path: to })
    : await Deno.connect({ hostname: "127.0.0.1", port: to });
  const lines = Object.entries({ host: "x", connection: "close", ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`).join("");
  await conn.write(
    new TextEncoder().encode(`GET ${target} HTTP/1.1\r\n${lines}\r\n`),
  );
  const text = await new Response(conn.readable).text();
  const [head, body] = text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), body, head };
}

Deno.test("deno task start serves the contract on TCP", async () => {
  const { proc, port } = await startedOnPort();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    const json = await res.json();
    assert.equal(json.ip, "127.0.0.1");
    assert.equal(res.headers.get("cache-control"), "no-store");
    const listening = JSON.parse(
      proc.stdout.find((l) => l.includes("listening"))!,
    );
    assert.equal(listening.address.port, port);
    assert.match(listening.version, /^\d+\.\d+\.\d+/);
  } finally {
    const status = await stopped(proc);
    assert.equal(status.code, 0);
  }
});

Deno.test("on IPv6, [::1] comes back as ::1", async () => {
  const { proc, port } = await startedOnPort({}, "::1");
  try {
    const res = await fetch(`http://[::1]:${port}/ip`);
    assert.equal(await res.text(), "::1\n");
  } finally {
    await stopped(proc);
  }
});

// The service alone on the default HOST (`::`), or `dev` (its watcher).
async function bothFamilies(task: "start" | "dev") {
  const { proc, port } = await onFreePort(async (port) => ({
    proc: await listening(denoTask(task, { PORT: String(port) })),
    port,
  }));
  try {
    const v4 = await fetch(`http://127.0.0.1:${port}/ip?format=json`);
    assert.deepEqual(await v4.json(), { ip: "127.0.0.1", family: "ipv4" });
    const v6 = await fetch(`http://[::1]:${port}/ip?format=json`);
    assert.deepEqual(await v6.json(), { ip: "::1", family: "ipv6" });
  } finally {
    assert.equal((await stopped(proc)).code, 0);
  }
}

Deno.test("by default start answers IPv4 and IPv6, an IPv4 client as its dotted quad", () =>
  bothFamilies("start"));

Deno.test("by default dev answers IPv4 and IPv6, and stops on SIGTERM", () =>
  bothFamilies("dev"));

Deno.test("dev on a busy port says so and exits 2 instead of waiting for a change", async () => {
  const holder = Deno.listen({ hostname: "::", port: 0 });
  const started = Date.now();
  const dev = denoTask("dev", { PORT: String(holder.addr.port) });
  // A watcher that goes on is killed (and the test fails) after 60 s.
  const kill = setTimeout(() => dev.child.kill("SIGKILL"), 60_000);
  try {
    const status = await dev.child.status;
    await dev.drained;
    const seconds = (Date.now() - started) / 1000;
    assert.equal(status.code, 2, `exit ${status.code} after ${seconds} s`);
    assert.match(dev.stderr.join("\n"), /Cannot listen on .*in use/);
  } finally {
    clearTimeout(kill);
    holder.close();
  }
});

Deno.test("without IPv6 the default HOST falls back to IPv4; a HOST that was set does not", () => {
  const noIpv6 = (host: string) => {
    if (host.includes(":")) {
      throw new Error("Address family not supported by protocol (os error 97)");
    }
    return host;
  };
  const config = (env: Record<string, string>) =>
    loadServiceConfig((name) => env[name]);
  assert.equal(listenTcp(config({}), noIpv6), "0.0.0.0");
  assert.equal(listenTcp(config({}), (h) => h), "::");
  assert.throws(() => listenTcp(config({ HOST: "::" }), noIpv6), /os error 97/);
  const busy = () => {
    throw new Deno.errors.AddrInUse("in use");
  };
  assert.throws(() => listenTcp(config({}), busy), Deno.errors.AddrInUse);
});

// In a network namespace of its own with IPv6 disabled: port 8000 is free
// there, and nothing else sees it.
Deno.test({
  name:
    "where IPv6 is disabled, start still starts by default and answers IPv4",
  ignore: !needsRoot("make a network namespace without IPv6") ||
    !needs("unshare", "ip", "curl"),
  fn: async () => {
    const script = [
      "ip link set lo up",
      "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
      "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6",
      "deno task -q start & pid=$!",
      "curl -s4 --retry 50 --retry-connrefused --retry-delay 1 127.0.0.1:8000/ip",
      "curl -s6 '[::1]:8000/ip' || echo no-ipv6",
      "kill $pid; wait $pid",
    ].join("\n");
    const out = await new Deno.Command("unshare", {
      args: ["-n", "sh", "-ec", script],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const log = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, log);
    const answers = text.split("\n").filter((l) => l && !l.startsWith("{"));
    assert.deepEqual(answers, ["127.0.0.1", "no-ipv6"], text + log);
  },
});

Deno.test("bad settings stop the start with one line and exit code 2", async () => {
  for (
    const [env, name] of [
      [{ PORT: "99999" }, "PORT"],
      [{ PORT: "eighty" }, "PORT"],
      [{ TRUSTED_PROXIES: "10.0.0.0/8,bogus" }, "TRUSTED_PROXIES"],
      [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
      [{ CLOCK_MAX_ERROR_MS: "0" }, "CLOCK_MAX_ERROR_MS"],
      [{ HOST: "not-an-ip" }, "HOST"],
      [{ IPV6_ORIGIN: "http://[::1]:8000" }, "IPV6_ORIGIN"],
      [
        { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" },
        "OTEL_EXPORTER_OTLP_ENDPOINT",
      ],
      // Spellings ipaddr.js alone would take, and a zone id.
      [{ HOST: "::1%lo" }, "HOST"],
      [{ HOST: "2130706433" }, "HOST"],
      [{ HOST: "0x7f.1" }, "HOST"],
      [{ HOST: "127.0.0.1 " }, "HOST"],
      [{ SOCKET: "/nonexistent-dir/w.sock" }, "SOCKET"],
      [{ SOCKET: "/etc/hostname/w.sock" }, "SOCKET"],
      [{ SOCKET: `/tmp/${"s".repeat(120)}.sock` }, "SOCKET"],
    ] as [Record<string, string>, string][]
  ) {
    const proc = denoTask("start", env);
    const status = await proc.child.status;
    await proc.drained;
    assert.equal(status.code, 2, name);
    const lines = proc.stderr.filter((l) => l.startsWith("{"));
    assert.equal(lines.length, 1, proc.stderr.join("\n"));
    assert.match(
      JSON.parse(lines[0]).msg,
      new RegExp(`^(Invalid|Cannot listen on) ${name}`),
    );
    assert.equal(proc.stdout.join(""), "");
  }
});

Deno.test("on a Unix socket: mode 0660, X-Real-IP read strictly, socket removed on SIGTERM", () =>
  withTempDir(async (dir) => {
    const socket = `${dir}/w.sock`;
    const proc = await started({ SOCKET: socket });
    try {
      assert.equal((await Deno.stat(socket)).mode! & 0o777, 0o660);
      let res = await rawGet(socket, "/ip", { "x-real-ip": "2001:DB8::7" });
      assert.equal(res.status, 200);
      assert.equal(res.body, "2001:db8::7\n");
      for (const evil of ["evil<script>", "1.2.3.4%<script>", "0.0.0.0"]) {
        res = await rawGet(socket, "/ip", { "x-real-ip": evil });
        assert.equal(res.status, 400, evil);
        assert.doesNotMatch(res.body, /evil|script|0\.0\.0\.0/);
      }
      res = await rawGet(socket, "/ip");
      assert.equal(res.status, 400);
    } finally {
      const status = await stopped(proc);
      assert.equal(status.code, 0);
    }
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
    assert.ok(proc.stdout.some((l) => l.includes('"msg":"stopped"')));
  }));

Deno.test("a stale socket from a crash is removed; a regular file or live socket is not", () =>
  withTempDir(async (dir) => {
    const socket = `${dir}/w.sock`;
    await staleSocket(socket);
    assert.ok((await Deno.lstat(socket)).isSocket);
    const proc = await started({ SOCKET: socket });
    try {
      assert.equal((await rawGet(socket, "/healthz")).status, 200);
      // A second process must not steal the live socket.
      const second = denoTask("start", { SOCKET: socket });
      assert.equal((await second.child.status).code, 2);
      await second.drained;
      assert.match(second.stderr.join("\n"), /another process is listening/);
      assert.equal((await rawGet(socket, "/healthz")).status, 200);
    } finally {
      await stopped(proc);
    }
    const file = `${dir}/file.sock`;
    await Deno.writeTextFile(file, "keep me");
    const third = denoTask("start", { SOCKET: file });
    assert.equal((await third.child.status).code, 2);
    await third.drained;
    assert.match(third.stderr.join("\n"), /not a socket/);
    assert.equal(await Deno.readTextFile(file), "keep me");
  }));

// One SIGTERM with 20 requests in flight on keep-alive connections; returns
// how many of them were answered. Each is answered in full, or its idle
// connection is closed before the request was read (clients retry those),
// never cut off half-way.
async function drainRound(): Promise<number> {
  const { proc, port } = await startedOnPort();
  const encode = (s: string) => new TextEncoder().encode(s);
  const request = encode("GET /ip HTTP/1.1\r\nHost: x\r\n\r\n");
  // Keep-alive connections the server has accepted and answered once.
  const conns = await Promise.all(
    Array.from(
      { length: 20 },
      () => Deno.connect({ hostname: "127.0.0.1", port }),
    ),
  );
  const buffer = new Uint8Array(4096);
  for (const c of conns) {
    await c.write(request);
    await c.read(buffer);
  }
  // A second request on each, with the signal right behind it.
  await Promise.all(conns.map((c) => c.write(request)));
  proc.child.kill("SIGTERM");
  const answers = await Promise.all(
    conns.map((c) => new Response(c.readable).text()),
  );
  const complete = answers.filter((a) => a !== "");
  for (const a of complete) {
    assert.match(a, /^HTTP\/1\.1 200 [^]*\r\n\r\n127\.0\.0\.1\n$/);
  }
  assert.equal((await proc.child.status).code, 0);
  await proc.drained;
  assert.ok(proc.stdout.some((l) => l.includes('"msg":"stopped"')));
  // Nothing new is accepted after it stopped.
  await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
  return complete.length;
}

Deno.test("SIGTERM closes keep-alive connections cleanly, then exits 0", async () => {
  // Whether the server has read a request before the signal lands is the
  // scheduler's choice: a round where none was read proves nothing, so
  // rounds repeat until one had requests in flight, and those are answered.
  let answered = 0;
  for (let round = 0; round < 5 && answered === 0; round++) {
    answered = await drainRound();
  }
  assert.ok(answered > 0, "in 5 rounds no request in flight was answered");
});

Deno.test("per-request log lines only at LOG_LEVEL=debug", async () => {
  for (const [level, expected] of [["info", false], ["debug", true]] as const) {
    const { proc, port } = await startedOnPort({ LOG_LEVEL: level });
    await (await fetch(`http://127.0.0.1:${port}/ip`, {
      headers: { "x-request-id": "dbg-1" },
    })).text();
    await stopped(proc);
    const line = proc.stdout.find((l) => l.includes('"msg":"request"'));
    assert.equal(line !== undefined, expected, level);
    if (line) assert.equal(JSON.parse(line).request_id, "dbg-1");
  }
});

Deno.test("the service cannot do more than its flags allow", async () => {
  const port = freePort();
  // The process is started with exactly these flags by `deno task start`.
  const flags = (await stdoutOf(Deno.execPath(), ["task", "-q", "flags"], {
    env: { PORT: String(port), HOST: "127.0.0.1" },
  })).trim().split(" ");
  assert.deepEqual(flags.filter((f) => f.startsWith("--allow-net")), [
    `--allow-net=127.0.0.1:${port}`,
  ]);
  for (const f of flags) {
    assert.doesNotMatch(
      f,
      /^(-A|--allow-all|--allow-run|--allow-ffi|--allow-sys|--allow-read|--allow-write|--allow-net)$/,
    );
  }
  assert.ok(flags.includes("--cached-only") && flags.includes("--frozen"));
  // A program run with those flags is refused anything else.
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `for (const f of [() => Deno.readTextFileSync("/etc/hostname"), () => Deno.env.get("HOME"), () => Deno.listen({ port: ${
      port + 1
    } })]) { try { f(); console.log("allowed"); } catch (e) { console.log(e.name); } }`,
  );
  const probe = await stdoutOf(Deno.execPath(), [
    "run",
    ...flags.filter((f) => f.startsWith("--allow")),
    script,
  ]);
  await Deno.remove(script);
  assert.deepEqual(probe.trim().split("\n"), [
    "NotCapable",
    "NotCapable",
    "NotCapable",
  ]);
});

Deno.test("the bench's bare server answers GET / with the service's bytes", () =>
  // bench/bench.ts measures the service against it as Deno's limit: the
  // comparison is fair only while the answers are the same.
  withTempDir(async (dir) => {
    const procs: Running[] = [];
    const bare = (env: Record<string, string>) =>
      listening(
        run(Deno.execPath(), ["run", "-A", "bench/bare_server.ts"], { env }),
      );
    // Only the date and the timestamp may differ.
    const masked = (answer: { head: string; body: string }) =>
      answer.head.replace(/^date: .*$/im, "date: -") + "\r\n\r\n" +
      answer.body.replace(/"timestamp":"[^"]+"/, '"timestamp":"-"');
    const headers = { "x-real-ip": "192.0.2.1", "x-request-id": "same-1" };
    try {
      procs.push(await started({ SOCKET: `${dir}/s.sock` }));
      procs.push(await bare({ SOCKET: `${dir}/b.sock` }));
      const service = await startedOnPort();
      procs.push(service.proc);
      const bareTcp = await onFreePort(async (port) => ({
        proc: await bare({ PORT: String(port) }),
        port,
      }));
      procs.push(bareTcp.proc);
      assert.equal(
        masked(await rawGet(`${dir}/b.sock`, "/", headers)),
        masked(await rawGet(`${dir}/s.sock`, "/", headers)),
      );
      assert.equal(
        masked(await rawGet(bareTcp.port, "/", headers)),
        masked(await rawGet(service.port, "/", headers)),
      );
    } finally {
      for (const p of procs) await stopped(p);
    }
  }));

/** curl from a source address, for what fetch cannot do. */
function curlFrom(source: string, url: string, headers: string[]) {
  return stdoutOf("curl", [
    "-sS",
    "--interface",
    source,
    ...headers.flatMap((h) => ["-H", h]),
    url,
  ]);
}

Deno.test("the forwarding table, through the service alone", async () => {
  const { proc, port } = await startedOnPort({
    TRUSTED_PROXIES: TABLE_TRUSTED,
  });
  try {
    for (const [lines, expected] of FORWARDING_CASES) {
      const answer = await curlFrom(
        TABLE_PEER,
        `http://127.0.0.1:${port}/ip`,
        lines.map((l) => `X-Forwarded-For: ${l}`),
      );
      assert.equal(answer, expected + "\n", JSON.stringify(lines));
    }
  } finally {
    await stopped(proc);
  }
});

Deno.test("a client's unbalanced quote in Forwarded cannot hide the proxy's element", async () => {
  const { proc, port } = await startedOnPort({
    FORWARDED_HEADER: "forwarded",
    TRUSTED_PROXIES: "127.0.0.1",
  });
  try {
    const url = `http://127.0.0.1:${port}/ip`;
    // The client wrote the first line; the trusted proxy appended the second.
    assert.equal(
      await curlFrom("127.0.0.1", url, [
        'Forwarded: for=6.6.6.6, a="',
        "Forwarded: for=9.9.9.9",
      ]),
      "9.9.9.9\n",
    );
    assert.equal(
      await curlFrom("127.0.0.1", url, [
        'Forwarded: for=6.6.6.6, a="x, for=1.1.1.1"',
        'Forwarded: for="[2001:db8::9]:443";proto=https',
      ]),
      "2001:db8::9\n",
    );
    // Malformed or impossible last elements: the proxy itself, never a guess.
    for (const last of ["for=0.0.0.0", "for=6.6.6.6 x", "for=[::1]"]) {
      assert.equal(
        await curlFrom("127.0.0.1", url, [`Forwarded: ${last}`]),
        "127.0.0.1\n",
        last,
      );
    }
  } finally {
    await stopped(proc);
  }
});

Deno.test("out of descriptors, the service drops held connections and serves again, never exits", async () => {
  // 256 descriptors; more connections than that send headers that never end.
  const { proc, port } = await onFreePort(async (port) => ({
    proc: await listening(
      run("sh", ["-c", "ulimit -n 256 && exec deno task -q start"], {
        env: {
          HOST: "127.0.0.1",
          PORT: String(port),
          PATH: Deno.env.get("PATH")!,
        },
      }),
    ),
    port,
  }));
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(
          new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"),
        );
        held.push(conn);
      } catch {
        // Refused while the service is out of descriptors.
      }
    }
    await proc.waitFor(/out of file descriptors/, 10_000);
    // The attacker has closed nothing; the service answers again anyway.
    let answered = false;
    const deadline = Date.now() + 10_000;
    while (!answered && Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
          signal: AbortSignal.timeout(1000),
        });
        answered = res.ok;
        await res.body?.cancel();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(answered, [...proc.stdout, ...proc.stderr].slice(-5).join("\n"));
    assert.ok(
      proc.stderr.every((l) => l.startsWith("{")),
      "no stack trace: " + proc.stderr.join("\n"),
    );
  } finally {
    for (const conn of held) {
      try {
        conn.close();
      } catch {
        // Closed by the service.
      }
    }
    proc.child.kill("SIGTERM");
    await proc.child.status;
    await proc.drained;
  }
});

Deno.test("a stdout nobody reads never stalls the service: it answers on, and counts what it dropped", async () => {
  // LOG_LEVEL=debug: a line a request, far more than a pipe holds.
  const { port, child, answered } = await onFreePort(async (port) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "start"],
      env: { HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "debug" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const url = `http://127.0.0.1:${port}/ip`;
    const answered = await until(() =>
      fetch(url).then(async (r) => {
        await r.body?.cancel();
        return r.ok;
      }, () => false), 30_000);
    return { port, child, answered };
  });
  try {
    assert.ok(answered, "the service started");
    // More lines than the pipe and the queue (1 MiB) hold.
    for (let i = 0; i < 8000; i++) {
      // A service blocked on its stdout would never answer: fail, not hang.
      const res = await fetch(`http://127.0.0.1:${port}/ip`, {
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    // Read now: the lines kept, then the count of those dropped.
    child.kill("SIGTERM");
    const out = new TextDecoder().decode(
      await new Response(child.stdout).arrayBuffer(),
    );
    const err = new TextDecoder().decode(
      await new Response(child.stderr).arrayBuffer(),
    );
    // Each note counts every line dropped so far: the last one counts all.
    const note = (out + err).split("\n").findLast((l) =>
      l.includes("log lines dropped")
    );
    assert.ok(note, err.slice(-500));
    // Every line up to the last request is written or counted (listening,
    // 8,001 requests); what came after it (shutting down, stopped) may be
    // neither if the process exits first.
    const kept = out.split("\n").filter((l) =>
      l.startsWith("{") && !l.includes("log lines dropped")
    );
    const told = kept.length + JSON.parse(note).dropped;
    assert.ok(told >= 1 + 8001 && told <= 1 + 8001 + 2, String(told));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Stopped already.
    }
    await child.status;
  }
});
