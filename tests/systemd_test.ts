// The systemd unit for a VM (deploy/systemd/ip-timestamp.service): what it
// must share with the image and the stack, and its command run here as
// systemd would run it. No systemd boots here (its syntax is checked by
// `systemd-analyze verify`, .ci/lint.sh systemd); a VM or GitHub's runner
// can start it for real.
import assert from "node:assert/strict";
import { DEFAULTS } from "../service/config.ts";
import {
  listening,
  needs,
  onFreePort,
  openTempDir,
  pidsOf,
  PROJECT_DIR,
  run,
  stdoutOf,
} from "./test_util.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));
const UNIT = read("./deploy/systemd/ip-timestamp.service");

/** Every `Key=value` of the unit, each key's values in order. */
function settings(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Za-z]+)=(.*)$/);
    if (m) map.set(m[1], [...(map.get(m[1]) ?? []), m[2]]);
  }
  return map;
}

const unit = settings(UNIT);
const one = (key: string) => {
  const values = unit.get(key) ?? [];
  assert.equal(values.length, 1, `${key}: ${values.join(" | ")}`);
  return values[0];
};
const env: Record<string, string> = Object.fromEntries(
  (unit.get("Environment") ?? []).flatMap((line) =>
    line.split(" ").map((kv) => kv.split("=", 2))
  ),
);
const dockerfile = read("./Dockerfile");

Deno.test("the unit runs the image's command on its bundles, unprivileged, confined, in a runtime directory of its own", () => {
  const cmd = JSON.parse(dockerfile.match(/^CMD (\[.*\])$/m)![1]) as string[];
  assert.equal(cmd.slice(0, 2).join(" "), "/bin/sh -c");
  // $$ is systemd's escape for a literal $.
  assert.equal(
    one("ExecStart"),
    `/bin/sh -c '${cmd[2].replaceAll("$", "$$$$")}'`,
  );
  assert.equal(env.WORKER_BUNDLE, `${one("WorkingDirectory")}/worker.js`);
  assert.equal(env.RUNTIME_DIR, `/run/${one("RuntimeDirectory")}`);
  assert.equal(env.DENO_DIR, `/var/cache/${one("CacheDirectory")}`);
  // The stack refuses root: a user made for the run.
  assert.equal(one("DynamicUser"), "yes");
  assert.notEqual(one("User"), "root");
  for (
    const [key, value] of [
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["NoNewPrivileges", "yes"],
      ["CapabilityBoundingSet", ""],
      ["RuntimeDirectoryMode", "0700"],
    ]
  ) assert.equal(one(key), value, key);
});

Deno.test("systemd stops the unit as the stack drains and restarts it only when a restart can help", () => {
  // SIGTERM to the supervisor alone, which drains nginx before the
  // workers; systemd's SIGKILL only after the stack's own hard stop.
  assert.equal(one("KillMode"), "mixed");
  const hardStop = DEFAULTS.drainSeconds + 2; // stack/main.ts: drainMs
  const timeout = Number(one("TimeoutStopSec"));
  assert.ok(timeout > hardStop, `TimeoutStopSec ${timeout} > ${hardStop}`);
  assert.ok(timeout <= hardStop + 5, `TimeoutStopSec ${timeout} not much more`);
  assert.equal(one("Restart"), "on-failure");
  // Exit 2: a bad setting, the same at every start.
  assert.equal(one("RestartPreventExitStatus"), "2");
  const connections = Number(
    read("./nginx/nginx.conf").match(/worker_connections (\d+);/)![1],
  );
  assert.ok(Number(one("LimitNOFILE")) > connections, "a file per connection");
});

/**
 * The image's bundles, built by the Dockerfile's own bundle step into
 * `dir`/app, its country database into `dir`/data.
 */
async function bundleAsTheImage(dir: string): Promise<void> {
  const step =
    dockerfile.match(/^RUN (deno run .* tasks\/bundle\.ts .*)$/m)![1];
  const script = step.replaceAll("/usr/share/ip-timestamp/", `${dir}/data/`)
    .replaceAll(" /app ", ` ${dir}/app `);
  assert.doesNotMatch(script, / \/(app|data)\b|\/usr\/share/, script);
  const info = JSON.parse(
    await stdoutOf(Deno.execPath(), ["info", "--json"]),
  );
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", script],
    cwd: PROJECT_DIR,
    env: { DENO_DIR: info.denoDir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test({
  name:
    "the unit's command serves from the installed bundles as an ordinary user, and leaves its runtime directory empty",
  ignore: !needs("nginx", "setpriv", "pgrep"),
  fn: async () => {
    const dir = await openTempDir("ip-timestamp-unit-");
    try {
      await bundleAsTheImage(dir);
      // As systemd prepares them: the user's, closed to others.
      const user = Deno.uid() === 0 ? 65534 : Deno.uid()!;
      for (const sub of ["run", "cache"]) {
        await Deno.mkdir(`${dir}/${sub}`, { mode: 0o700 });
        await Deno.chown(`${dir}/${sub}`, user, user);
      }
      const paths = (value: string) =>
        value.replace(one("WorkingDirectory"), `${dir}/app`)
          .replace(env.RUNTIME_DIR, `${dir}/run`)
          .replace(env.DENO_DIR, `${dir}/cache`);
      const [sh, c, script] = one("ExecStart").match(/^(\S+) (-c) '(.*)'$/)!
        .slice(1);
      await onFreePort(async (port) => {
        // systemd's environment: the unit's, systemd's PATH (with this
        // deno), no HOME of the user's.
        const settings = Object.entries({ ...env, PORT: String(port) })
          .map(([k, v]) => `${k}=${paths(v)}`);
        const deno = Deno.execPath().replace(/\/[^/]*$/, "");
        const stack = await listening(
          run("setpriv", [
            ...(Deno.uid() === 0
              ? [`--reuid=${user}`, `--regid=${user}`, "--clear-groups"]
              : []),
            "env",
            "-i",
            `PATH=${deno}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
            ...settings,
            sh,
            c,
            script.replaceAll("$$", "$"),
          ], { cwd: `${dir}/app` }),
          /"msg":"ready"/,
        );
        try {
          const res = await fetch(`http://127.0.0.1:${port}/ip`);
          assert.equal(await res.text(), "127.0.0.1\n");
        } finally {
          stack.child.kill("SIGTERM");
          assert.equal((await stack.child.status).code, 0);
          await stack.drained;
        }
      });
      // systemd removes the directory itself when the unit stops.
      assert.deepEqual([...Deno.readDirSync(`${dir}/run`)], []);
    } finally {
      // What a failed stop left (a stack that is not the shell's exec).
      for (const pid of await pidsOf(dir)) Deno.kill(pid, "SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
