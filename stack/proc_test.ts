// cat and kill as the supervisor runs them: the real ones on this machine's
// /proc, and stand-ins on PATH that are missing, hung or broken.
import assert from "node:assert/strict";
import { catFiles, killPid, processStates } from "./proc.ts";
import { memoryLimit } from "./cgroup.ts";

// Runs `body` with PATH holding only `programs` (shell scripts by name).
async function withPrograms(
  programs: Record<string, string>,
  body: () => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "ip-timestamp-bin-" });
  const path = Deno.env.get("PATH")!;
  try {
    for (const [name, script] of Object.entries(programs)) {
      await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\n${script}\n`);
      await Deno.chmod(`${dir}/${name}`, 0o755);
    }
    Deno.env.set("PATH", dir);
    await body();
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("this machine's /proc and cgroup files are read through cat; a file gone is no error", async () => {
  assert.equal(await catFiles(["/nonexistent/memory.max"]), "");
  const both = await catFiles(["/nonexistent", "/proc/self/cgroup"]);
  assert.match(both, /^\d+:/m);
  // Whatever this machine's limit is, it is a positive number or none.
  const limit = await memoryLimit((path) => catFiles([path]));
  assert.ok(limit === undefined || limit.bytes > 0);
});

Deno.test("a process's state, parent and start time (its identity with the pid) come from /proc", async () => {
  const parent = new Deno.Command("sh", { args: ["-c", "sleep 30 & wait"] })
    .spawn();
  try {
    let pid: number | undefined;
    while (pid === undefined) {
      await new Promise((r) => setTimeout(r, 10));
      pid = (await processStates([], [parent.pid]))[0]?.pid;
    }
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.deepEqual(await processStates([pid], []), [{
      pid,
      ppid: parent.pid,
      stopped: false,
      start: Number(fields[19]),
    }]);
    Deno.kill(pid, "SIGSTOP");
    while (!(await processStates([pid], []))[0].stopped) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await killPid(pid);
    await parent.status;
    // Gone now: left out, and killing it again is no error.
    assert.deepEqual(await processStates([pid], []), []);
    await killPid(pid);
  } finally {
    try {
      parent.kill("SIGKILL");
    } catch {
      // Gone.
    }
  }
});

Deno.test("cat or kill missing, hung or broken: a rejection saying why, never a hang", async () => {
  await withPrograms({}, async () => {
    await assert.rejects(processStates([Deno.pid], []), /cat/);
    await assert.rejects(killPid(999_999), /kill/);
  });
  await withPrograms({
    cat: "echo 'cat: /proc/1/stat: Permission denied' >&2; exit 1",
    kill: "echo 'kill: (1): Operation not permitted' >&2; exit 1",
  }, async () => {
    await assert.rejects(processStates([1], []), /Permission denied/);
    await assert.rejects(killPid(1), /Operation not permitted/);
  });
  await withPrograms({ cat: "exec /bin/sleep 60" }, async () => {
    await assert.rejects(catFiles(["/proc/self/stat"]), /did not end within/);
  });
});
