import assert from "node:assert/strict";
import { memoryLimit, oomKills, type ReadText } from "./cgroup.ts";

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
  assert.equal(await oomKills(read, limit!), 2);
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
  assert.equal(await oomKills(read, limit!), 3);
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
