// The benchmark harness as a user runs it: interrupted, it leaves nothing.
import assert from "node:assert/strict";
import {
  denoTask,
  listening,
  needs,
  onFreePort,
  PROJECT_DIR,
  run,
  type Running,
  stdoutOf,
} from "./test_util.ts";
import { costlyMix } from "../bench/servers.ts";
import { wrk } from "../testing/wrk.ts";

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

// The soak's worker-memory targets mean something only if its traffic is
// what it says: lookups of both families among the rest, all answered.
Deno.test({
  name:
    "the bench's costly mix looks up IPv4 and IPv6 addresses besides /, /ip and /time, every answer a 200",
  ignore: !needs("wrk"),
  fn: async () => {
    const { port, proc } = await onFreePort(async (port) => ({
      port,
      proc: await listening(denoTask("start", {
        PORT: String(port),
        HOST: "127.0.0.1",
        LOG_LEVEL: "debug",
      })) as Running,
    }));
    try {
      const url = `http://127.0.0.1:${port}/`;
      const r = await wrk(url, { connections: 4, seconds: 2, ...costlyMix() });
      assert.ok(r.requests > 100, `only ${r.requests} requests`);
    } finally {
      proc.child.kill("SIGTERM");
      await proc.child.status;
      await proc.drained;
    }
    const requests = proc.stdout.filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { path: string; status: number });
    const lookups = requests.map((r) => r.path).filter((p) =>
      p.startsWith("/api/ip/")
    );
    assert.ok(lookups.some((p) => /^\/api\/ip\/[\d.]+$/.test(p)), "no IPv4");
    assert.ok(lookups.some((p) => /^\/api\/ip\/[\da-f:]+$/.test(p)), "no IPv6");
    for (const path of ["/", "/ip", "/time"]) {
      assert.ok(requests.some((r) => r.path === path), `no ${path}`);
    }
    assert.deepEqual(requests.filter((r) => r.status !== 200).slice(0, 3), []);
  },
});
