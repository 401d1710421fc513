/**
 * The stack's main: settings, the checks before anything is written, the
 * runtime directory, nginx's config, then the supervisor until a signal or
 * a child that cannot be kept running ends it. {@linkcode run} returns the
 * exit code, as go-httpbin's `mainImpl` does: a {@linkcode ConfigError} is
 * 2 (one line naming what to fix), anything else 1, a clean stop 0.
 *
 * @module
 */
import meta from "../deno.json" with { type: "json" };
import { ConfigError, DEFAULTS } from "../service/config.ts";
import type { Logger } from "../service/log.ts";
import { oomKills } from "./cgroup.ts";
import { type Family, nginxSpec, workerSpec } from "./children.ts";
import { catFiles, killPid, processStates } from "./proc.ts";
import { kernelClock } from "./kernel_clock.ts";
import { LogRelay } from "./log_relay.ts";
import { renderNginxConfig } from "./nginx_config.ts";
import { preflight } from "./preflight.ts";
import { prepareRuntimeDir, type RuntimeDir } from "./runtime_dir.ts";
import {
  loadStackConfig,
  machineFacts,
  STACK_ENV,
  type StackConfig,
} from "./stack_config.ts";
import { type Host, Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";

const PROJECT_DIR = new URL("..", import.meta.url).pathname;

const USAGE = `ip-timestamp stack ${meta.version}: nginx on PORT in front of
WORKERS Deno workers on Unix sockets, supervised. Usage: deno task stack
Settings (environment): ${STACK_ENV.join(" ")}
Docs: README.md, docs/deployment.md. Stops on SIGTERM, SIGINT or SIGHUP.`;

// nginx.conf, written and checked by nginx itself.
async function writeNginxConfig(
  config: StackConfig,
  dir: RuntimeDir,
  ipv6: boolean,
): Promise<string> {
  const conf = dir.layout.nginxConf;
  await dir.writeFile(conf, renderNginxConfig(config, ipv6));
  const check = await new Deno.Command("nginx", {
    args: ["-t", "-q", "-c", conf, "-e", "stderr"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!check.success) {
    throw new ConfigError("nginx rejected the rendered configuration", {
      output: new TextDecoder().decode(check.stderr).trim(),
    });
  }
  return conf;
}

// The machine, for the supervisor.
function machine(config: StackConfig): Host {
  const memory = config.memory;
  return {
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    processStates,
    kill: killPid,
    oomKills: () =>
      memory
        ? oomKills((path) => catFiles([path]), memory)
        : Promise.resolve(0),
    memoryLimitMiB: memory && Math.round(memory.bytes / 2 ** 20),
  };
}

// Runs the children until a signal or a give-up; the exit code.
async function supervise(
  family: Family,
  conf: string,
  logger: Logger,
  started: number,
): Promise<number> {
  const { config } = family;
  const host = machine(config);
  const supervisor = new Supervisor(logger, host, {
    ...POLICY,
    startTimeoutMs: config.startTimeout * 1000,
  });
  const drainMs = (DEFAULTS.drainSeconds + 2) * 1000;
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => supervisor.stop(signal, 0, drainMs));
  }
  const workers = Array.from(
    { length: config.workers },
    (_, i) => workerSpec(family, i),
  );
  if (
    await supervisor.start(workers) &&
    await supervisor.start([nginxSpec(family, conf)])
  ) {
    logger.info("ready", {
      port: config.port,
      workers: config.workers,
      rate_limit: config.rateLimit,
      memory_limit_mib: host.memoryLimitMiB,
      startup_ms: Math.round(performance.now() - started),
      project: PROJECT_DIR,
      version: meta.version,
      clock: family.clock.state,
    });
  }
  return await supervisor.done;
}

/**
 * The whole run as an exit code: `--help` and `--version` print and end
 * with 0; every error thrown below is mapped here, and only here.
 */
export async function run(relay: LogRelay, args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (args.includes("--version")) {
    console.log(meta.version);
    return 0;
  }
  const started = performance.now();
  let logger = relay.logger("info", { component: "stack" });
  try {
    const config = loadStackConfig(
      (n) => Deno.env.get(n),
      await machineFacts(),
    );
    logger = relay.logger(config.service.logLevel, { component: "stack" });
    const { ipv6 } = await preflight(config);
    const dir = await prepareRuntimeDir(config.runtimeDir);
    try {
      const conf = await writeNginxConfig(config, dir, ipv6);
      const family = { config, relay, clock: kernelClock(logger) };
      const code = await supervise(family, conf, logger, started);
      if (code === 0) logger.info("stopped");
      return code;
    } finally {
      await dir.discard();
    }
  } catch (err) {
    if (err instanceof ConfigError) logger.error(err.message, err.fields);
    else logger.error("the stack failed", { error: String(err) });
    return err instanceof ConfigError ? 2 : 1;
  }
}

/** Runs the stack until a signal stops it, then exits (`deno task stack`). */
export async function main(): Promise<never> {
  const relay = new LogRelay(Deno.stdout, Deno.stderr);
  const code = await run(relay, Deno.args);
  // What is queued is written first (a stalled reader: 1 s at most).
  await relay.flush();
  Deno.exit(code);
}
