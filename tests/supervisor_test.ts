// The supervisor with real processes: every child watched (a worker caught
// while it starts, nginx's own worker process), children as the stack's
// account under root, root without the power to switch users refused, and
// the default runtime directory gone after a clean stop. The decisions
// themselves are tested in-process in stack/supervision_test.ts.
import assert from "node:assert/strict";
import {
  answers,
  freePort,
  needs,
  needsRoot,
  pidsOf,
  run,
  stdoutOf,
  until,
  withStack,
  withTempDir,
} from "./test_util.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import { NGINX_ACCOUNT } from "../stack/nginx_user.ts";

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
        const line = stack.stderr.find((l) =>
          l.includes('"msg":"nginx worker process is stopped; replacing it"')
        );
        assert.ok(line, stack.stderr.join("\n"));
        assert.equal(JSON.parse(line).pid, workers[0]);
        assert.ok(await serves(`${stack.url}/`));
      } finally {
        signal(workers[0], "SIGKILL");
      }
    }),
});

Deno.test({
  name:
    "as root, every process that reads a request runs as the stack's account",
  ignore: !ready || !needsRoot("run the stack as root"),
  fn: () =>
    withStack({}, async (stack) => {
      const ps = await stdoutOf("ps", ["-eo", "user:32=,args="]);
      const mine = ps.split("\n").filter((l) => l.includes(stack.runtimeDir));
      const workers = mine.filter((l) =>
        / --allow-net=unix:\S+worker-/.test(l)
      );
      assert.equal(workers.length, 2, mine.join("\n"));
      const master = (await Deno.readTextFile(
        runtimeLayout(stack.runtimeDir).nginxPid,
      )).trim();
      const nginx = await stdoutOf("ps", [
        "--ppid",
        master,
        "-o",
        "user:32=",
      ]);
      for (const user of [...workers, nginx.trim()]) {
        assert.equal(user.split(" ")[0], NGINX_ACCOUNT, user);
      }
    }),
});

Deno.test({
  name:
    "root without CAP_SETUID and CAP_SETGID is refused with one line and exit 2",
  ignore: !ready || !needsRoot("run the stack as root without capabilities"),
  fn: () =>
    withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      // As a container run as root with every capability dropped but one.
      const proc = run("setpriv", [
        "--bounding-set=-all,+chown",
        "--inh-caps=-all",
        "--",
        Deno.execPath(),
        "task",
        "-q",
        "stack",
      ], { env: { RUNTIME_DIR: `${dir}/run`, PORT: String(freePort()) } });
      const { code } = await proc.child.status;
      await proc.drained;
      const lines = [...proc.stdout, ...proc.stderr];
      assert.equal(code, 2, lines.join("\n"));
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(
        JSON.parse(lines[0]).msg,
        /^running as root without the capabilities to run the children as ip-timestamp \(CAP_SETUID, CAP_SETGID\): run the stack as an ordinary user/,
      );
    }),
});

Deno.test({
  name:
    "the default runtime directory is the user's own, and a clean stop removes it",
  ignore: !ready,
  fn: () =>
    withTempDir(async (xdg) => {
      await Deno.chmod(xdg, 0o755);
      const dir = `${xdg}/ip-timestamp`;
      await withStack({ XDG_RUNTIME_DIR: xdg, RUNTIME_DIR: "" }, async () => {
        assert.ok((await Deno.stat(dir)).isDirectory, "it runs from there");
      });
      await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
    }),
});
