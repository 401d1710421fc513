// The stack's settings: defaults that follow the machine (cores, the
// cgroup's memory, the user), and the one-line errors that stop a start.
import assert from "node:assert/strict";
import { ConfigError } from "../service/config.ts";
import type { MemoryLimit } from "./kernel.ts";
import {
  loadStackConfig,
  type MachineFacts,
  STACK_DEFAULTS,
} from "./stack_config.ts";

// Every real process has a HOME, where the default RUNTIME_DIR goes.
const env = (vars: Record<string, string>) => (name: string) =>
  ({ HOME: "/home/ann", ...vars })[name];
const MIB = 1024 * 1024;
const memory = (mib: number): MemoryLimit => ({
  bytes: mib * MIB,
  file: "/sys/fs/cgroup/memory.max",
  events: "/sys/fs/cgroup/memory.events",
});
const host = (facts: Partial<MachineFacts> = {}): MachineFacts => ({
  cpus: 2,
  ...facts,
});

Deno.test("defaults: one worker per core, one nginx process per two workers", () => {
  const stack = loadStackConfig(env({}), host({ cpus: 3 }));
  assert.equal(stack.port, 8080);
  assert.equal(stack.workers, 3);
  assert.equal(stack.nginxWorkers, 2);
  assert.equal(stack.rateLimit, STACK_DEFAULTS.rateLimit);
  assert.equal(stack.startTimeout, 0, "no start deadline unless asked");
  assert.equal(
    loadStackConfig(env({ WORKERS: "1" }), host({ cpus: 8 })).nginxWorkers,
    1,
  );
});

Deno.test("the default worker count fits the cgroup's memory limit", () => {
  // 256 MiB (deployment.yaml's limit): room for two workers beside nginx
  // and the supervisor, whatever the core count.
  const small = host({ cpus: 16, memory: memory(256) });
  assert.equal(loadStackConfig(env({}), small).workers, 2);
  assert.equal(
    loadStackConfig(env({}), host({ cpus: 1, memory: memory(256) })).workers,
    1,
  );
  assert.equal(
    loadStackConfig(env({}), host({ cpus: 4, memory: memory(4096) })).workers,
    4,
  );
});

Deno.test("WORKERS that cannot fit the memory limit: one line naming WORKERS and the limit", () => {
  assert.throws(
    () =>
      loadStackConfig(env({ WORKERS: "16" }), host({ memory: memory(256) })),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /^Invalid WORKERS 16: 16 workers need about 1152 MiB, more than the memory limit of 256 MiB \(memory\.max\); at most 2 fit$/,
      );
      return true;
    },
  );
  assert.throws(
    () => loadStackConfig(env({}), host({ memory: memory(128) })),
    /^ConfigError: Invalid WORKERS: the memory limit of 128 MiB/,
  );
  assert.equal(
    loadStackConfig(env({ WORKERS: "2" }), host({ memory: memory(256) }))
      .workers,
    2,
  );
});

Deno.test("the default runtime directory is in one of the user's own, never a name in /tmp", () => {
  const dir = (vars: Record<string, string>) =>
    loadStackConfig(env(vars), host()).runtimeDir;
  assert.equal(dir({ HOME: "/home/ann" }), "/home/ann/.cache/ip-timestamp");
  assert.equal(
    dir({ XDG_RUNTIME_DIR: "/run/user/1000", HOME: "/home/ann" }),
    "/run/user/1000/ip-timestamp",
  );
  // An XDG_RUNTIME_DIR the stack would not put in a config: HOME instead.
  assert.equal(
    dir({ XDG_RUNTIME_DIR: "/run/a b", HOME: "/root" }),
    "/root/.cache/ip-timestamp",
  );
  assert.equal(dir({ RUNTIME_DIR: "/tmp/x/" }), "/tmp/x");
  assert.throws(
    () => dir({ HOME: "" }),
    /^ConfigError: Invalid RUNTIME_DIR: unset, and neither XDG_RUNTIME_DIR nor HOME/,
  );
});

Deno.test("bad stack settings are refused with a message naming the variable", () => {
  for (
    const [vars, message] of [
      [{ WORKERS: "0" }, /^Invalid WORKERS/],
      [{ WORKERS: "65" }, /^Invalid WORKERS/],
      [{ NGINX_WORKERS: "0" }, /^Invalid NGINX_WORKERS/],
      [{ RATE_LIMIT: "fast" }, /^Invalid RATE_LIMIT/],
      [{ START_TIMEOUT: "10s" }, /^Invalid START_TIMEOUT "10s"/],
      [{ RUNTIME_DIR: "tmp" }, /^Invalid RUNTIME_DIR/],
      [{ FORWARDED_HEADER: "forwarded" }, /only x-forwarded-for/],
    ] as [Record<string, string>, RegExp][]
  ) {
    assert.throws(() => loadStackConfig(env(vars), host()), { message });
  }
  assert.equal(
    loadStackConfig(env({ START_TIMEOUT: "120" }), host()).startTimeout,
    120,
  );
});
