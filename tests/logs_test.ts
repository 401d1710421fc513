// The stack's logs under a flood of refused requests, and when a worker
// dies: through a real stack, as an operator reads them.
import assert from "node:assert/strict";
import { bundle } from "../tasks/bundle.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import {
  needs,
  STATIC_PATHS,
  stdoutOf,
  withStack,
  withTempDir,
} from "./test_util.ts";

const ready = needs("nginx");

type Entry = Record<string, unknown>;

function entries(lines: string[]): Entry[] {
  return lines.map((l) => JSON.parse(l));
}

// Polls `check` every 200 ms until it holds; fails after `ms`.
async function until(check: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Sends requests as `client` (a forwarded address the stack trusts) from
// `parallel` loops until `stop` resolves; counts the answers by status.
async function load(
  url: string,
  client: string,
  parallel: number,
  stop: Promise<void>,
): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let stopped = false;
  stop.then(() => (stopped = true));
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (!stopped) {
      const res = await fetch(url, { headers: { "x-forwarded-for": client } });
      await res.body?.cancel();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  }));
  return statuses;
}

const A = "192.0.2.1";
const B = "192.0.2.2";

Deno.test({
  name:
    "a flood of refused requests is one line per client per second, and other errors still show",
  ignore: !ready,
  fn: () =>
    withStack({ RATE_LIMIT: "5", TRUSTED_PROXIES: "127.0.0.1" }, async (s) => {
      // A missing static file: nginx logs an error for each request of it.
      const missing = STATIC_PATHS[0];
      await Deno.remove(runtimeLayout(s.runtimeDir).public + missing);
      const done = Promise.withResolvers<void>();
      const floods = Promise.all([
        load(`${s.url}/ip`, A, 16, done.promise),
        load(`${s.url}/ip`, B, 1, done.promise),
      ]);
      let errors = 0;
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 300));
        const res = await fetch(s.url + missing);
        await res.body?.cancel();
        assert.equal(res.status, 404);
        errors++;
      }
      done.resolve();
      const [a, b] = await floods;
      const refused = (client: string) =>
        entries(s.stderr).filter((e) =>
          e.msg === "requests refused" && e.client === client
        );
      const sum = (list: Entry[]) =>
        list.reduce((n, e) => n + Number(e.count), 0);
      const expected: Record<string, number> = {
        [A]: a.get(429) ?? 0,
        [B]: b.get(429) ?? 0,
      };
      assert.ok(expected[A] > 100, JSON.stringify([...a]));
      // nginx flushes its log within a second, the relay counts a second.
      await until(
        () => sum(refused(A)) >= expected[A] && sum(refused(B)) >= expected[B],
        15_000,
        `refused lines counting ${JSON.stringify(expected)}`,
      );
      for (const client of [A, B]) {
        assert.equal(sum(refused(client)), expected[client], client);
        const seconds = refused(client).map((e) => String(e.time).slice(0, 19));
        assert.equal(new Set(seconds).size, seconds.length, seconds.join());
        for (const e of refused(client)) assert.equal(e.status, 429);
      }
      assert.ok(
        !s.stdout.some((l) => l.includes('"status":429')),
        "no access-log line per refused request",
      );
      // Every error from the same seconds is logged, none crowded out.
      await until(
        () =>
          entries(s.stderr).filter((e) =>
            e.component === "nginx" && /No such file/.test(String(e.msg))
          ).length === errors,
        10_000,
        `${errors} lines about the missing file`,
      );
      assert.ok(
        !s.stderr.some((l) => /limiting (requests|connections)/.test(l)),
      );
    }),
});

// The workers' program, bundled, with a way to make it die as a bundle
// that throws does: an uncaught error on SIGUSR1.
async function crashingBundle(dir: string): Promise<string> {
  const path = `${dir}/worker.js`;
  await bundle(dir, `${dir}/geo.mmdb`);
  await Deno.writeTextFile(
    path,
    'Deno.addSignalListener("SIGUSR1", () => { throw new Error("boom"); });\n' +
      await Deno.readTextFile(path),
  );
  return path;
}

Deno.test({
  name:
    "a worker's uncaught error is one error line with its index, without colour codes",
  ignore: !ready,
  fn: () =>
    withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const program = await crashingBundle(dir);
      await withStack({ WORKER_BUNDLE: program }, async (s) => {
        const pid = Number(
          (await stdoutOf("pgrep", ["-f", ` ${program}$`])).trim().split(
            "\n",
          )[0],
        );
        assert.ok(pid > 0, "no worker found");
        const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
        const index = [0, 1].find((i) =>
          cmdline.includes(`unix:${workerSocket(s.runtimeDir, i)}`)
        );
        Deno.kill(pid, "SIGUSR1");
        await s.waitFor(/"msg":"worker \d exited with code \d+; restarting"/);
        await until(
          () => s.stderr.some((l) => l.includes("Error: boom")),
          10_000,
          "the uncaught error",
        );
        const lines = [...s.stdout, ...s.stderr];
        const mentions = lines.filter((l) => /boom| {4}at /.test(l));
        assert.equal(mentions.length, 1, mentions.join("\n"));
        const entry = JSON.parse(mentions[0]);
        assert.equal(entry.level, "error");
        assert.equal(entry.worker, index);
        assert.match(
          entry.msg,
          /^error: Uncaught \(in promise\) Error: boom\n.*\n.*\^\n {4}at /,
        );
        assert.ok(!lines.some((l) => l.includes("\\u001b")), "escape codes");
      });
    }),
});
