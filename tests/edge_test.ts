// The stack at its edges: floods from one address, a hung worker, a
// stalled or closed stdout, a killed supervisor, a busy port, and output
// that stays JSON whatever clients send.
import assert from "node:assert/strict";
import {
  answers,
  collectLines,
  denoTask,
  needs,
  onFreePort,
  openTempDir,
  pidsOf,
  PortTaken,
  PROJECT_DIR,
  rawRequest,
  saysPortTaken,
  STACK_UID,
  stackCommand,
  stackExit,
  startStack,
  stdoutOf,
  supervisorPid,
  until,
  withStack,
} from "./test_util.ts";
import { startFlood } from "./flood.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";

const ready = needs("nginx", "curl", "setpriv");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request from another loopback address (127.0.0.2); true on 200. */
async function probeFrom(port: number, source = "127.0.0.2") {
  const out = await stdoutOf("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-m",
    "2",
    "--interface",
    source,
    `http://127.0.0.1:${port}/healthz`,
  ]);
  return out === "200";
}

Deno.test({
  name:
    "while one address floods with slow headers, slow bodies and idle connections, other addresses are served and the log stays short",
  ignore: !ready,
  fn: () =>
    withStack({ RATE_LIMIT: "50" }, async (stack) => {
      // More connections than nginx had room for before (4,096), each
      // kept open as long as nginx lets it.
      const flood = startFlood(stack.port, {
        slowHeaders: 1000,
        slowBodies: 3500,
        idle: 500,
      });
      const logBefore = stack.stderr.length;
      let served = 0;
      let probes = 0;
      try {
        await until(() => flood.open() >= 4000, 10_000);
        const end = Date.now() + 8000;
        while (Date.now() < end) {
          probes++;
          if (await probeFrom(stack.port)) served++;
          await sleep(200);
        }
      } finally {
        await flood.stop();
      }
      console.log(
        `flood: ${served}/${probes} probes served, ${flood.opened()} flood connections`,
      );
      assert.ok(served / probes >= 0.95, `${served}/${probes} probes served`);
      // ~20 nginx lines a second and a count of the rest, not 90,000.
      const lines = stack.stderr.length - logBefore;
      assert.ok(lines < 600, `${lines} log lines during the flood`);
    }),
});

Deno.test({
  name: "a hung worker (SIGSTOP) is replaced within seconds",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const socket = workerSocket(stack.runtimeDir, 0);
      const [pid] = await pidsOf(`allow-net=unix:${socket} `);
      assert.ok(pid, "worker 0 runs");
      Deno.kill(pid, "SIGSTOP");
      const stopped = Date.now();
      try {
        const replaced = await until(async () => {
          const now = await pidsOf(`allow-net=unix:${socket} `);
          return now.length === 1 && now[0] !== pid &&
            stack.stdout.some((l) => l.includes('"msg":"worker 0 restarted"'));
        }, 15_000);
        const seconds = (Date.now() - stopped) / 1000;
        console.log(`hung worker replaced in ${seconds.toFixed(1)} s`);
        assert.ok(replaced, "the hung worker was replaced");
      } finally {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Killed by the supervisor.
        }
      }
      assert.ok(
        stack.stderr.some((l) => l.includes("worker 0 is not answering")),
        "the supervisor says why",
      );
      // nginx sends nothing to the old one: every request answered at once.
      for (let i = 0; i < 20; i++) {
        const t0 = Date.now();
        assert.ok(await answers(`${stack.url}/healthz`));
        assert.ok(Date.now() - t0 < 1500, "answered without a timeout");
      }
    }),
});

/**
 * Starts the stack with stdout piped but not read (or read by the test);
 * stderr is the caller's to read.
 */
async function rawStack(port: number, runtimeDir: string, env = {}) {
  const { cmd, args, ...opts } = await stackCommand(port, runtimeDir, { env });
  return new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? PROJECT_DIR,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** A raw stack on a free port; `up` if it answered within 20 s. */
interface RawStack {
  child: Deno.ChildProcess;
  /** The child's stderr, the caller's to read. */
  stderr: ReadableStream<Uint8Array>;
  port: number;
  runtimeDir: string;
  up: boolean;
}

/**
 * {@linkcode rawStack} on a free port, again on another if the port is
 * taken under it, with its runtime directory under `base` (removed if it
 * never starts); waits until its own nginx (its pid file) answers
 * /healthz. `started` runs on each child first (a test's stdout reader).
 */
function rawStackUp(
  base: string,
  env: Record<string, string> = {},
  started: (child: Deno.ChildProcess) => Promise<void> = async () => {},
): Promise<RawStack> {
  const runtimeDir = `${base}/run`;
  const pidFile = runtimeLayout(runtimeDir).nginxPid;
  return onFreePort(async (port) => {
    const child = await rawStack(port, runtimeDir, env);
    const [stderr, mine] = child.stderr.tee();
    const lines: string[] = [];
    const read = collectLines(mine, lines);
    let exited = false;
    child.status.then(() => exited = true);
    await started(child);
    let up = false;
    await until(async () =>
      exited ||
      (up = await Deno.stat(pidFile).then(() => true, () => false) &&
        await answers(`http://127.0.0.1:${port}/healthz`)), 20_000);
    const stack = { child, stderr, port, runtimeDir, up };
    if (up || !exited) return stack;
    await read;
    if (!saysPortTaken(lines)) return stack;
    await stderr.cancel();
    await child.stdout.cancel().catch(() => {});
    throw new PortTaken(lines.join("\n"));
  }).catch(async (err) => {
    await Deno.remove(base, { recursive: true }).catch(() => {});
    throw err;
  });
}

Deno.test({
  name: "a stdout nobody reads never stops serving; dropped lines are counted",
  ignore: !ready,
  fn: async () => {
    // The stack makes its runtime directory itself, under a base nginx may
    // pass through.
    const base = await openTempDir("ip-timestamp-test-");
    const { child, stderr, port, up } = await rawStackUp(base);
    stderr.pipeTo(new WritableStream()).catch(() => {});
    try {
      assert.ok(up);
      // Far more access-log lines (~250 bytes each) than the pipe and the
      // relay's queue (1 MiB) hold.
      const load = await new Deno.Command("curl", {
        args: [
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}\n",
          "-m",
          "5",
          "--parallel",
          "--parallel-max",
          "16",
          ...Array.from(
            { length: 10_000 },
            (_, i) => `http://127.0.0.1:${port}/ip?n=${i}`,
          ),
        ],
        stdout: "piped",
        // A stack that stops serving fails the test rather than hang it.
        signal: AbortSignal.timeout(20_000),
      }).output();
      const codes = new TextDecoder().decode(load.stdout).trim().split("\n");
      assert.equal(codes.filter((c) => c === "200").length, 10_000);
      assert.ok(await answers(`http://127.0.0.1:${port}/healthz`));
      // The reader comes back: it is told how many lines it missed.
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      let seen = "";
      await until(async () => {
        await answers(`http://127.0.0.1:${port}/healthz`);
        const chunk = await Promise.race([
          reader.read().then((r) => r.value),
          sleep(500).then(() => undefined),
        ]);
        if (chunk) seen += decoder.decode(chunk, { stream: true });
        return seen.includes("log lines dropped");
      }, 15_000);
      reader.releaseLock();
      const note = JSON.parse(
        seen.split("\n").find((l) => l.includes("log lines dropped")) ??
          "{}",
      );
      assert.ok(note.dropped > 0, JSON.stringify(note));
    } finally {
      // Read to the end, so that a stack blocked on stdout can exit.
      const rest = child.stdout.pipeTo(new WritableStream()).catch(() => {});
      child.kill("SIGTERM");
      await child.status;
      await rest;
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "with stdout closed (| head -n1), SIGTERM still stops everything cleanly",
  ignore: !ready,
  fn: async () => {
    // The stack makes its runtime directory itself, under a base nginx may
    // pass through.
    const base = await openTempDir("ip-timestamp-test-");
    const { child, stderr: errors, port, runtimeDir, up } = await rawStackUp(
      base,
      {},
      async (child) => {
        const reader = child.stdout.getReader();
        await reader.read();
        // What `head -n1` does: read a line and close the pipe.
        await reader.cancel();
      },
    );
    const stderr: string[] = [];
    errors.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void stderr.push(text) }),
    ).catch(() => {});
    try {
      assert.ok(up);
      for (let i = 0; i < 50; i++) {
        assert.ok(await answers(`http://127.0.0.1:${port}/ip`));
      }
      // nginx flushes its access log within a second: writes hit EPIPE.
      await sleep(1500);
      assert.ok(await answers(`http://127.0.0.1:${port}/ip`));
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, stderr.join(""));
      assert.deepEqual(await pidsOf(runtimeDir), [], "nothing left running");
      assert.equal(
        await answers(`http://127.0.0.1:${port}/healthz`),
        false,
        "no orphaned nginx serves",
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await killLeftovers(runtimeDir);
      await Deno.remove(base, { recursive: true });
    }
  },
});

/** Stops what a stack in `runtimeDir` left running (after a failure). */
async function killLeftovers(runtimeDir: string): Promise<void> {
  try {
    const pid = Number(
      await Deno.readTextFile(runtimeLayout(runtimeDir).nginxPid),
    );
    Deno.kill(pid, "SIGTERM");
  } catch {
    // No nginx left.
  }
  for (const pid of await pidsOf(runtimeDir)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

Deno.test({
  name: "when the supervisor is killed (-9), nginx and the workers stop too",
  ignore: !ready,
  fn: async () => {
    const stack = await startStack();
    try {
      Deno.kill(await supervisorPid(stack.child), "SIGKILL");
      const gone = await until(
        async () =>
          (await pidsOf(stack.runtimeDir)).length === 0 &&
          !(await answers(`${stack.url}/healthz`)),
        10_000,
      );
      assert.ok(gone, `left running: ${await pidsOf(stack.runtimeDir)}`);
    } finally {
      await killLeftovers(stack.runtimeDir);
      await stack.stop();
      await stack.cleanup();
    }
  },
});

Deno.test({
  name: "SIGHUP stops the stack like SIGTERM: a log line, exit 0",
  ignore: !ready,
  fn: async () => {
    const stack = await startStack();
    try {
      Deno.kill(await supervisorPid(stack.child), "SIGHUP");
      assert.equal((await stack.child.status).code, 0);
      await stack.drained;
      assert.ok(stack.stdout.some((l) => l.includes('"signal":"SIGHUP"')));
      assert.deepEqual(await pidsOf(stack.runtimeDir), []);
    } finally {
      await killLeftovers(stack.runtimeDir);
      await stack.stop();
      await stack.cleanup();
    }
  },
});

Deno.test({
  name:
    "a start over a worker that still answers in RUNTIME_DIR refuses with one line and exit 2",
  ignore: !ready,
  fn: async () => {
    const runtimeDir = await openTempDir("ip-timestamp-test-");
    await Deno.mkdir(`${runtimeDir}/sockets`, { mode: 0o700 });
    await Deno.chown(`${runtimeDir}/sockets`, STACK_UID, STACK_UID);
    const socket = workerSocket(runtimeDir, 0);
    const leftover = denoTask("start", { SOCKET: socket });
    try {
      await leftover.waitFor(/"msg":"listening"/);
      // The stack's user may connect to it (as root, the stack is nobody).
      await Deno.chmod(socket, 0o666);
      const { proc, code } = await stackExit({ RUNTIME_DIR: runtimeDir });
      assert.equal(code, 2);
      assert.deepEqual(proc.stdout, []);
      assert.equal(proc.stderr.length, 1, proc.stderr.join("\n"));
      assert.match(proc.stderr[0], /Invalid RUNTIME_DIR .*still answers/);
    } finally {
      leftover.child.kill("SIGTERM");
      await leftover.child.status;
      await leftover.drained;
      await Deno.remove(runtimeDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a second stack on a busy port says PORT in one line and exits 2; the first keeps its traffic",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const dir = await openTempDir("ip-timestamp-test-");
      try {
        const { proc: second, code } = await stackExit({
          PORT: String(stack.port),
          RUNTIME_DIR: `${dir}/run`,
          WORKERS: "1",
        });
        assert.equal(code, 2);
        assert.deepEqual(second.stdout, []);
        assert.equal(second.stderr.length, 1, second.stderr.join("\n"));
        assert.match(
          second.stderr[0],
          new RegExp(`Invalid PORT ${stack.port}`),
        );
        const before = stack.stdout.length;
        for (let i = 0; i < 20; i++) {
          assert.ok(await answers(`${stack.url}/ip`));
        }
        // Every request reached the first stack (its access log).
        assert.ok(
          await until(
            () =>
              stack.stdout.slice(before).filter((l) =>
                l.includes('"path":"/ip"')
              )
                .length === 20,
            5000,
          ),
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name: "a port held by another program: one line naming PORT, exit 2",
  ignore: !ready,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    try {
      const { proc, code } = await stackExit({ PORT: String(port) });
      assert.equal(code, 2);
      assert.deepEqual(proc.stdout, []);
      assert.equal(proc.stderr.length, 1, proc.stderr.join("\n"));
      assert.match(proc.stderr[0], new RegExp(`Invalid PORT ${port}`));
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name:
    "every line the stack writes is one valid UTF-8 JSON object, whatever clients send",
  ignore: !ready,
  fn: async () => {
    // The stack makes its runtime directory itself, under a base nginx may
    // pass through.
    const base = await openTempDir("ip-timestamp-test-");
    const { child, stderr, port, up } = await rawStackUp(base, {
      RATE_LIMIT: "2",
    });
    const out = new Response(child.stdout).bytes();
    const err = new Response(stderr).bytes();
    try {
      assert.ok(up);
      for (
        const line of [
          "GET /%ff%fe%c3 HTTP/1.1",
          "GET /%9b31m HTTP/1.1",
          "GET /\xff\xfe\x9b31m HTTP/1.1",
          "GET /static/ HTTP/1.1",
        ]
      ) {
        await rawRequest(
          port,
          `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`,
        );
      }
      // Too large a header: nginx's own refusal, counted (as a 431, or as a
      // 429 once the client is over the limit).
      await rawRequest(
        port,
        `GET /ip HTTP/1.1\r\nHost: x\r\nX-Big: ${
          "a".repeat(9000)
        }\r\nConnection: close\r\n\r\n`,
      );
      // Refused requests, counted by the relay.
      for (let i = 0; i < 10; i++) await answers(`http://127.0.0.1:${port}/ip`);
      await sleep(1500);
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
    await Deno.remove(base, { recursive: true });
    const strict = new TextDecoder("utf-8", { fatal: true });
    const entries = [];
    for (const bytes of [await out, await err]) {
      const text = strict.decode(bytes);
      // Raw control bytes (terminal escapes); newlines end lines.
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
      for (const line of text.split("\n").filter(Boolean)) {
        const entry = JSON.parse(line);
        assert.equal(typeof entry, "object", line);
        entries.push(entry);
      }
    }
    const paths = entries.map((e) => e.path).filter(Boolean);
    assert.ok(paths.includes("/%ff%fe%c3"), paths.join(" "));
    assert.ok(paths.includes("/%9b31m"), paths.join(" "));
    assert.ok(!paths.some((p) => p.startsWith("/_errors/")), paths.join(" "));
    assert.ok(
      !entries.some((e) => e.path && e.status === 431),
      "the 431 is counted as a refusal, not logged on its own",
    );
    assert.ok(
      entries.some((e) =>
        e.component === "nginx" && e.msg === "requests refused" && e.count > 0
      ),
      "refused requests, counted, as JSON",
    );
  },
});
