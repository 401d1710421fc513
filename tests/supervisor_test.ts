// The supervisor with real processes: every child watched (a worker caught
// while it starts, nginx's own worker process, a worker's socket taken over),
// root refused, and the default runtime directory gone after a clean stop. The decisions
// themselves are tested in-process in stack/supervision_test.ts.
import assert from "node:assert/strict";
import {
  answers,
  freePort,
  needs,
  needsRoot,
  openTempDir,
  pidsOf,
  run,
  stdoutOf,
  until,
  withStack,
  withTempDir,
} from "./test_util.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import { ROOT_REFUSED } from "../stack/preflight.ts";

const ready = needs("nginx", "setpriv", "pgrep");

/** Sends `signal` to `pid` if it still runs. */
function signal(pid: number | undefined, sig: Deno.Signal): void {
  try {
    if (pid) Deno.kill(pid, sig);
  } catch {
    // Gone.
  }
}

/** Every request of `count` answered 200 within 1.5 s each. */
async function serves(url: string, count = 10): Promise<boolean> {
  for (let i = 0; i < count; i++) {
    const t0 = Date.now();
    if (!(await answers(url)) || Date.now() - t0 > 1500) return false;
  }
  return true;
}

Deno.test({
  name:
    "a worker stopped (SIGSTOP) right after its restart is replaced within 10 s, with one line saying why",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const flag = `allow-net=unix:${workerSocket(stack.runtimeDir, 0)} `;
      const [first] = await pidsOf(flag);
      signal(first, "SIGKILL");
      // Its replacement, caught as soon as it exists: before it answers.
      let next: number | undefined;
      assert.ok(
        await until(async () => {
          next = (await pidsOf(flag)).find((p) => p !== first);
          return next !== undefined;
        }, 10_000),
        "a replacement started",
      );
      signal(next, "SIGSTOP");
      const stopped = Date.now();
      try {
        const line = await stack.waitFor(
          /"msg":"worker 0 (is stopped while starting|is not answering); replacing it"/,
          15_000,
        );
        await stack.waitFor(/"msg":"worker 0 restarted"/, 15_000);
        const seconds = (Date.now() - stopped) / 1000;
        console.log(`${JSON.parse(line).msg} in ${seconds.toFixed(1)} s`);
        assert.ok(seconds < 10, `replaced after ${seconds} s`);
        assert.equal(JSON.parse(line).worker, 0);
        assert.ok(await serves(`${stack.url}/healthz`));
      } finally {
        signal(next, "SIGKILL");
      }
    }),
});

Deno.test({
  name:
    "nginx's worker process stopped (SIGSTOP) is replaced and serving resumes within 10 s",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const master = (await Deno.readTextFile(
        runtimeLayout(stack.runtimeDir).nginxPid,
      )).trim();
      const workers = (await stdoutOf("pgrep", ["-P", master])).trim()
        .split("\n").map(Number);
      assert.equal(workers.length, 1, "one nginx worker process (WORKERS=2)");
      signal(workers[0], "SIGSTOP");
      const stopped = Date.now();
      try {
        assert.ok(
          await until(() => answers(`${stack.url}/healthz`), 10_000),
          "serving resumed",
        );
        const seconds = (Date.now() - stopped) / 1000;
        console.log(
          `nginx worker replaced, serving in ${seconds.toFixed(1)} s`,
        );
        // The line may reach the test after the answers do.
        const line = await stack.waitFor(
          /"msg":"nginx worker process is stopped; replacing it"/,
        );
        assert.equal(JSON.parse(line).pid, workers[0]);
        assert.ok(await serves(`${stack.url}/`));
      } finally {
        signal(workers[0], "SIGKILL");
      }
    }),
});

Deno.test({
  name:
    "as root the stack refuses to start: one line saying what works, exit 2",
  ignore: !ready || !needsRoot("show what the stack says to root"),
  fn: () =>
    withTempDir(async (dir) => {
      const proc = run(Deno.execPath(), ["task", "-q", "stack"], {
        env: { RUNTIME_DIR: `${dir}/run`, PORT: String(freePort()) },
      });
      const { code } = await proc.child.status;
      await proc.drained;
      const lines = [...proc.stdout, ...proc.stderr];
      assert.equal(code, 2, lines.join("\n"));
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.equal(JSON.parse(lines[0]).msg, ROOT_REFUSED);
      assert.match(ROOT_REFUSED, /runuser -u USER -- deno task stack/);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "it wrote nothing");
    }),
});

Deno.test({
  name:
    "the default runtime directory is the user's own, and a clean stop removes it",
  ignore: !ready,
  fn: async () => {
    // The stack's user may create its directory there.
    const xdg = await openTempDir("ip-timestamp-xdg-");
    const dir = `${xdg}/ip-timestamp`;
    try {
      await withStack({ XDG_RUNTIME_DIR: xdg, RUNTIME_DIR: "" }, async () => {
        assert.ok((await Deno.stat(dir)).isDirectory, "it runs from there");
      });
      await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
    } finally {
      await Deno.remove(xdg, { recursive: true });
    }
  },
});

// What `adjtimex -p` (Debian's adjtimex) says of the kernel's clock now.
async function adjtimex(): Promise<{ synced: boolean; maxErrorMs: number }> {
  const text = await stdoutOf("adjtimex", ["-p"]);
  const field = (name: string) =>
    Number(text.match(new RegExp(`${name} *[:=] *(-?\\d+)`))![1]);
  const synced = field("return value") !== 5 && !(field("status") & 0x40) &&
    field("maxerror") < 16_000_000;
  return { synced, maxErrorMs: field("maxerror") / 1000 };
}

Deno.test({
  name:
    "the stack's /time says what the kernel says of its clock, read the same second by adjtimex -p",
  ignore: !ready || !needs("adjtimex"),
  fn: () =>
    withStack({}, async (stack) => {
      const before = await adjtimex();
      const { clock } = await (await fetch(`${stack.url}/time`)).json();
      const after = await adjtimex();
      assert.equal(clock.source, "kernel");
      assert.equal(clock.synchronized, before.synced);
      assert.equal(clock.synchronized, after.synced);
      // The kernel adds 0.5 ms a second to maxerror until a daemon sets it;
      // the reading is at most a second and a half old.
      assert.ok(
        clock.max_error_ms >= Math.min(before.maxErrorMs, after.maxErrorMs) &&
          clock.max_error_ms <=
            Math.max(before.maxErrorMs, after.maxErrorMs) + 1,
        `${clock.max_error_ms} ms, adjtimex ${before.maxErrorMs}–${after.maxErrorMs}`,
      );
    }),
});

Deno.test({
  name:
    "CLOCK_MAX_ERROR_MS: /healthz answers 503 through nginx while the clock cannot meet it, /livez 200, and no worker is replaced",
  ignore: !ready || !needs("adjtimex"),
  fn: async () => {
    const { synced, maxErrorMs } = await adjtimex();
    // A bound this machine's clock cannot meet, synchronised or not.
    const limit = synced ? Math.max(1, Math.floor(maxErrorMs / 2)) : 16_000;
    await withStack({ CLOCK_MAX_ERROR_MS: String(limit) }, async (stack) => {
      for (let i = 0; i < 10; i++) {
        const health = await fetch(`${stack.url}/healthz`);
        assert.equal(health.status, 503);
        assert.equal((await health.json()).status, "clock unsynchronised");
        const live = await fetch(`${stack.url}/livez`);
        assert.equal(live.status, 200);
        await live.body?.cancel();
      }
      // The supervisor probes /livez: three probe rounds, nothing replaced.
      await new Promise((r) => setTimeout(r, 3500));
      const lines = [...stack.stdout, ...stack.stderr];
      assert.ok(!lines.some((l) => /replacing it|restarting/.test(l)));
      assert.ok(!lines.some((l) => /"status":502/.test(l)), "no 502");
    });
  },
});

Deno.test({
  name:
    "a worker's socket taken over by another process is caught within seconds; afterwards no answer comes from it",
  ignore: !ready,
  fn: () =>
    withStack({}, async (stack) => {
      const socket = workerSocket(stack.runtimeDir, 0);
      // What code running as the stack's user could do: unlink the socket
      // and bind its own, which answers the probes as well as any worker.
      await Deno.remove(socket);
      const impostor = Deno.serve(
        { path: socket, onListen() {} },
        () => Response.json({ timestamp: "forged", ip: "6.6.6.6" }),
      );
      await Deno.chmod(socket, 0o666);
      try {
        const line = await stack.waitFor(
          /"msg":"worker 0 does not own its socket/,
        );
        assert.equal(JSON.parse(line).level, "error");
        await stack.waitFor(/"msg":"worker 0 restarted"/);
        for (let i = 0; i < 20; i++) {
          const answer = await (await fetch(`${stack.url}/`)).json();
          assert.equal(answer.ip, "127.0.0.1");
        }
      } finally {
        await impostor.shutdown();
      }
    }),
});
