// The benchmark harness as a user runs it: interrupted, it leaves nothing.
import assert from "node:assert/strict";
import { needs, PROJECT_DIR, run, stdoutOf } from "./test_util.ts";

const ready = needs("nginx", "wrk", "setpriv");

async function benchDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for await (const entry of Deno.readDir("/tmp")) {
    if (entry.name.startsWith("bench-")) dirs.push(entry.name);
  }
  return dirs;
}

async function benchNginx(): Promise<string[]> {
  return (await stdoutOf("pgrep", ["-f", "nginx -c /tmp/bench-"])).split("\n")
    .filter(Boolean);
}

Deno.test({
  name:
    "Ctrl-C during the bench stops every server it started and removes its directories",
  ignore: !ready,
  fn: async () => {
    const dirsBefore = await benchDirs();
    const nginxBefore = await benchNginx();
    const bench = run(Deno.execPath(), ["run", "-A", "bench/bench.ts"], {
      cwd: PROJECT_DIR,
      env: { BENCH_SECONDS: "1", BENCH_ROUNDS: "1" },
    });
    try {
      // Every server runs once the first round starts.
      await bench.waitFor(/^round 1 /, 60_000);
      assert.ok((await benchNginx()).length > nginxBefore.length);
      bench.child.kill("SIGINT");
      assert.equal((await bench.child.status).code, 130);
    } finally {
      try {
        bench.child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await bench.drained;
    }
    const deadline = Date.now() + 10_000;
    let left: string[] = [];
    while (Date.now() < deadline) {
      left = (await benchNginx()).filter((p) => !nginxBefore.includes(p));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], "nginx masters left");
    const dirs = (await benchDirs()).filter((d) => !dirsBefore.includes(d));
    assert.deepEqual(dirs, [], "directories left in /tmp");
  },
});
