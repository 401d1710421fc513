/**
 * The supervisor's permission flags (`deno task flags stack` prints them
 * for the current environment).
 *
 * @module
 */
import { FROZEN_FLAGS } from "../service/flags.ts";
import { PROBE_URL } from "./children.ts";
import { LIBC } from "./kernel_clock.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";
import { STACK_ENV, type StackConfig } from "./stack_config.ts";

/**
 * The supervisor's flags, six programs among them (docs/security.md says
 * why each). A process that may run `deno` can do anything: these flags
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
    `--allow-read=${[dir, config.workerBundle].filter(Boolean).join(",")}`,
    `--allow-write=${dir}`,
    // Exact paths: a directory does not scope unix connects. [::]:0 is
    // the probe for IPv6 support, PORT the check that it is free.
    `--allow-net=${
      [
        "[::]:0",
        new URL(PROBE_URL).host,
        `0.0.0.0:${config.port}`,
        `[::]:${config.port}`,
        `unix:${runtimeLayout(dir).nginxAlive}`,
        ...Array.from(
          { length: config.workers },
          (_, i) => `unix:${workerSocket(dir, i)}`,
        ),
      ].join(",")
    }`,
    `--allow-run=nginx,setsid,setpriv,kill,cat,${denoPath}`,
    // adjtimex(2), a read of the kernel's clock state (kernel_clock.ts).
    `--allow-ffi=${LIBC}`,
    "--allow-sys=uid",
    // The supervisor's garbage is short-lived: a young generation of 1 MiB
    // semi-spaces keeps its RSS low whatever the log volume
    // (.ci/container/limits.sh; 4 MiB less under a flood of 200s here).
    "--v8-flags=--max-semi-space-size=1",
  ];
}
