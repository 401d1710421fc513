/**
 * The stack's main: settings, checks, the runtime directory, nginx's
 * config, then the supervisor until a signal or a give-up. `run` returns
 * the exit code, as go-httpbin's `mainImpl` does: a {@linkcode ConfigError}
 * is 2 (one line naming what to fix), anything else 1, a clean stop 0.
 *
 * @module
 */
import meta from "../deno.json" with { type: "json" };
import { ConfigError } from "../service/config.ts";
import type { Logger } from "../service/log.ts";
import { nginxSpec, workerSpec } from "./children.ts";
import { killPid, oomKills, processStates } from "./kernel.ts";
import { ClockPublisher } from "./kernel_clock.ts";
import { LogRelay } from "./log_relay.ts";
import { renderNginxConfig } from "./nginx_config.ts";
import { preflight } from "./preflight.ts";
import {
  prepareRuntimeDir,
  type RuntimeDir,
  runtimeLayout,
} from "./runtime_dir.ts";
import {
  loadStackConfig,
  machineFacts,
  STACK_ENV,
  type StackConfig,
} from "./stack_config.ts";
import { Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";

const USAGE = `ip-timestamp stack ${meta.version}: nginx on PORT in front of
WORKERS Deno workers on Unix sockets, supervised. Usage: deno task stack
Settings (environment): ${STACK_ENV.join(" ")}
Docs: README.md, docs/deployment.md. Stops on SIGTERM, SIGINT or SIGHUP.`;

// nginx.conf, written and checked by nginx itself, which must be there.
async function writeNginxConf(dir: RuntimeDir, text: string): Promise<string> {
  const conf = runtimeLayout(dir.root).nginxConf;
  await dir.writeFile(conf, new TextEncoder().encode(text));
  const check = await Promise.resolve().then(() =>
    new Deno.Command("nginx", {
      args: ["-t", "-q", "-c", conf, "-e", "stderr"],
      stdin: "null",
    }).output()
  ).catch(() => {
    throw new ConfigError(
      "nginx is not installed or not on PATH: on Debian or Ubuntu run apt-get install nginx-light",
    );
  });
  if (!check.success) {
    throw new ConfigError("nginx rejected the rendered configuration", {
      output: new TextDecoder().decode(check.stderr).trim(),
    });
  }
  return conf;
}

// Runs the workers, then nginx, until a signal or a give-up; the exit code.
async function supervise(
  config: StackConfig,
  relay: LogRelay,
  conf: string,
  logger: Logger,
): Promise<number> {
  const clock = new ClockPublisher(logger);
  const memory = config.memory;
  const memoryLimitMiB = memory && Math.round(memory.bytes / 2 ** 20);
  // The kernel's OOM kills so far: one more at a child's SIGKILL sent it.
  const kills = () => memory ? oomKills(memory) : 0;
  let killed = await Promise.resolve().then(kills).catch(() => 0);
  const supervisor = new Supervisor(logger, {
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    processStates,
    kill: killPid,
    async oomKilled() {
      const before = killed;
      killed = await kills();
      return killed > before ? memoryLimitMiB : undefined;
    },
  }, { ...POLICY, startTimeoutMs: config.startTimeout * 1000 });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => supervisor.stop(signal));
  }
  const workers = Array.from(
    { length: config.workers },
    (_, i) => workerSpec(config, relay, clock, i),
  );
  if (
    await supervisor.start(workers) &&
    await supervisor.start([nginxSpec(config, relay, conf)])
  ) {
    logger.info("ready", {
      port: config.port,
      workers: config.workers,
      rate_limit: config.rateLimit,
      memory_limit_mib: memoryLimitMiB,
      // Since the process started.
      startup_ms: Math.round(performance.now()),
      project: new URL("..", import.meta.url).pathname,
      version: meta.version,
      clock: clock.state,
    });
  }
  return await supervisor.done;
}

// The whole run as an exit code: every error thrown below is mapped here.
async function run(relay: LogRelay, args: string[]): Promise<number> {
  const asked = args.find((a) => ["-h", "--help", "--version"].includes(a));
  if (asked) {
    console.log(asked === "--version" ? meta.version : USAGE);
    return 0;
  }
  let logger = relay.logger("info", { component: "stack" });
  try {
    const env = (name: string) => Deno.env.get(name);
    const config = loadStackConfig(env, await machineFacts());
    logger = relay.logger(config.service.logLevel, { component: "stack" });
    const { ipv6 } = await preflight(config);
    const dir = await prepareRuntimeDir(config.runtimeDir);
    try {
      const text = renderNginxConfig(config, ipv6);
      const conf = await writeNginxConf(dir, text);
      const code = await supervise(config, relay, conf, logger);
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
