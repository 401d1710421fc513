// The kernel as the supervisor reads it: cgroup files of both versions
// (fakes), and cat and kill as it runs them: the real ones on this
// machine's /proc, and stand-ins on PATH that are missing, hung or broken.
import assert from "node:assert/strict";
import {
  killPid,
  memoryLimit,
  oomKills,
  processStates,
  type ReadText,
} from "./kernel.ts";

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
  const gone = 999_999_999;
  const states = await processStates([gone, Deno.pid], []);
  assert.deepEqual(states.map((p) => p.pid), [Deno.pid]);
  // Whatever this machine's limit is, it is a positive number or none.
  const limit = await memoryLimit();
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
    await assert.rejects(processStates([1], []), /did not end within/);
  });
});

function files(map: Record<string, string>): ReadText {
  return (path) => Promise.resolve(map[path] ?? "");
}

const MIB = 1024 * 1024;

Deno.test("cgroup v2 in a container: memory.max at the namespace's root, kills from memory.events", async () => {
  const read = files({
    "/proc/self/cgroup": "0::/\n",
    "/sys/fs/cgroup/memory.max": "268435456\n",
    "/sys/fs/cgroup/memory.events":
      "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
  });
  const limit = await memoryLimit(read);
  assert.deepEqual(limit, {
    bytes: 256 * MIB,
    file: "/sys/fs/cgroup/memory.max",
    events: "/sys/fs/cgroup/memory.events",
  });
  assert.equal(await oomKills(limit!, read), 2);
});

Deno.test("cgroup v2 on a host: the process's own cgroup path; 'max' is no limit", async () => {
  const path = "/kubepods.slice/pod1/cri-abc";
  const read = files({
    "/proc/self/cgroup": `0::${path}\n`,
    "/sys/fs/cgroup/memory.max": "max\n",
    [`/sys/fs/cgroup${path}/memory.max`]: "536870912\n",
  });
  assert.equal((await memoryLimit(read))?.bytes, 512 * MIB);
  assert.equal(
    await memoryLimit(files({
      "/proc/self/cgroup": "0::/user.slice\n",
      "/sys/fs/cgroup/memory.max": "max\n",
    })),
    undefined,
  );
});

Deno.test("cgroup v1 (podman's cgroupfs): memory.limit_in_bytes, kills from memory.oom_control", async () => {
  const read = files({
    "/proc/self/cgroup":
      "9:name=systemd:/libpod_parent/libpod-1\n4:memory:/libpod_parent/libpod-1\n1:cpu,cpuacct:/libpod_parent/libpod-1\n0::/libpod_parent/libpod-1\n",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n",
    "/sys/fs/cgroup/memory/memory.oom_control":
      "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
  });
  const limit = await memoryLimit(read);
  assert.equal(limit?.bytes, 256 * MIB);
  assert.equal(limit?.file, "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  assert.equal(await oomKills(limit!, read), 3);
});

Deno.test("cgroup v1 without a limit reports the largest 63-bit page count: no limit", async () => {
  const read = files({
    "/proc/self/cgroup": "4:memory:/\n",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
  });
  assert.equal(await memoryLimit(read), undefined);
});

Deno.test("the tightest of the limits seen is the one that counts", async () => {
  const read = files({
    "/proc/self/cgroup": "4:memory:/outer/inner\n",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1073741824\n",
    "/sys/fs/cgroup/memory/outer/inner/memory.limit_in_bytes": "134217728\n",
  });
  assert.equal((await memoryLimit(read))?.bytes, 128 * MIB);
});
