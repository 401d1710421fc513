/**
 * The permission flags, in one place. `deno task flags` prints the flags of
 * the service for the current environment (`deno task start` and `dev`),
 * `deno task flags compile` the same plus the compile target,
 * `deno task flags stack` those of the supervisor; the supervisor imports
 * {@linkcode serviceFlags} for each worker it starts.
 *
 * @module
 */
import {
  ConfigError,
  loadServiceConfig,
  SERVICE_ENV,
  type ServiceConfig,
} from "../service/config.ts";
import {
  hostFacts,
  loadStackConfig,
  STACK_ENV,
  type StackConfig,
} from "./stack_config.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";

/** Flags that keep every process from fetching or resolving code at start. */
export const FROZEN_FLAGS = ["--cached-only", "--frozen"];

/**
 * The service's flags: the env variables it reads, and either the exact
 * socket path (net, read, write) or the exact listen address (for the
 * default HOST, `[::]:PORT` and its IPv4 fallback `0.0.0.0:PORT`).
 */
export function serviceFlags(config: Partial<ServiceConfig>): string[] {
  const flags = [...FROZEN_FLAGS, `--allow-env=${SERVICE_ENV.join(",")}`];
  // The operator's city database (GEOIP_CITY_DB), read once at start.
  const read = config.geoipCityDb ? [config.geoipCityDb] : [];
  if (config.socket) {
    const s = config.socket;
    flags.push(`--allow-net=unix:${s}`, `--allow-write=${s}`);
    read.unshift(s);
  } else if (config.host && config.port) {
    // The default host's IPv4 fallback too: the grant cannot know whether
    // the machine that runs it has IPv6.
    const hosts = [config.host, config.ipv4Fallback].filter((h) => h);
    flags.push(
      `--allow-net=${
        hosts.map((h) => `${h!.includes(":") ? `[${h}]` : h}:${config.port}`)
          .join(",")
      }`,
    );
  }
  if (read.length > 0) flags.push(`--allow-read=${read.join(",")}`);
  return flags;
}

/**
 * The supervisor's flags: its runtime directory, the workers' sockets,
 * PORT (to check it is free), nginx's probe socket, nginx, deno, `setsid`
 * and `kill` (nginx's processes), `setpriv` (children die with it, and
 * drop root),
 * `useradd`, `stat` and `realpath`, `ps` (stopped children) and `cat`
 * (the cgroup's files), and its own uid. A process that may run `deno`,
 * or anything as root, can do anything (docs/security.md): these flags
 * keep the supervisor honest, the workers' flags are the boundary.
 */
export function stackFlags(config: StackConfig, denoPath: string): string[] {
  const dir = config.runtimeDir;
  return [
    ...FROZEN_FLAGS,
    // Without nginx on PATH Deno would print "Failed to resolve 'nginx' for
    // allow-run" first; the supervisor says it better (and how to fix it).
    "--quiet",
    `--allow-env=${STACK_ENV.join(",")}`,
    `--allow-read=${
      [
        dir,
        "/etc/group",
        "/etc/passwd",
        ...(config.workerBundle ? [config.workerBundle] : []),
      ].join(",")
    }`,
    `--allow-write=${dir}`,
    // Exact paths: a directory does not scope unix connects. [::]:0 is
    // the probe for IPv6 support, PORT the check that it is free.
    `--allow-net=${
      [
        "[::]:0",
        `0.0.0.0:${config.port}`,
        `[::]:${config.port}`,
        `unix:${runtimeLayout(dir).nginxAlive}`,
        ...Array.from(
          { length: config.workers },
          (_, i) => `unix:${workerSocket(dir, i)}`,
        ),
      ].join(",")
    }`,
    // useradd: nginx's own account as root (nginx_user.ts); stat and
    // realpath: the directories above RUNTIME_DIR (prepare_runtime_dir.ts).
    `--allow-run=nginx,setsid,setpriv,kill,useradd,stat,realpath,ps,cat,${denoPath}`,
    "--allow-sys=uid",
    // The supervisor's garbage is short-lived: a young generation of 1 MiB
    // semi-spaces keeps its RSS under 64 MiB whatever the log volume
    // (.ci/container/limits.sh; 4 MiB less under a flood of 200s here).
    "--v8-flags=--max-semi-space-size=1",
  ];
}

/**
 * `deno compile` options: the service's flags, baked into the executable,
 * and the target and output name (`TARGET` picks a cross-compile target).
 */
export function compileFlags(
  config: ServiceConfig,
  target: string | undefined,
): string[] {
  if (target !== undefined && !/^[a-z0-9_]+(-[a-z0-9_]+){2,3}$/.test(target)) {
    throw new ConfigError(`Invalid TARGET ${JSON.stringify(target)}`);
  }
  return [
    // The executable fetches nothing at start anyway; compiling it may have
    // to download Deno's runtime for the target.
    ...serviceFlags(config).filter((f) => f !== "--cached-only"),
    // Only the npm packages main.ts loads, not the test-only ones the lock
    // also pins.
    "--exclude-unused-npm",
    ...(target ? ["--target", target] : []),
    "--output",
    target ? `dist/ip-timestamp-${target}` : "dist/ip-timestamp",
  ];
}

if (import.meta.main) {
  const env = (name: string) => Deno.env.get(name);
  let flags: string[];
  try {
    flags = Deno.args[0] === "stack"
      ? stackFlags(loadStackConfig(env, await hostFacts()), Deno.execPath())
      : Deno.args[0] === "compile"
      ? compileFlags(loadServiceConfig(env), env("TARGET") || undefined)
      : serviceFlags(loadServiceConfig(env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Enough for the program itself to read and report the bad setting.
    flags = Deno.args[0] === "stack"
      ? [
        `--allow-env=${STACK_ENV.join(",")}`,
        "--allow-sys=uid",
        "--allow-run=cat",
      ]
      : [`--allow-env=${SERVICE_ENV.join(",")}`];
  }
  console.log(flags.join(" "));
}
