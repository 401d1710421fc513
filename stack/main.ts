/**
 * The stack's main: settings, the checks before anything is written, the
 * runtime directory, nginx's config, the workers' program, then the
 * supervisor until a signal or a child that cannot be kept running ends
 * it. Every failure is a value or a typed error, mapped to an exit code
 * here and nowhere else: 2 for a bad setting (one line naming it), 1 for
 * anything else, 0 for a clean stop.
 *
 * @module
 */
import { ConfigError, DEFAULTS } from "../service/config.ts";
import type { Logger } from "../service/log.ts";
import { catFile, oomKills } from "./cgroup.ts";
import {
  type Family,
  nginxSpec,
  processStates,
  workerSpec,
} from "./children.ts";
import { LogRelay } from "./log_relay.ts";
import { type NginxAccount, nginxAccount } from "./nginx_user.ts";
import { renderNginxConfig } from "./nginx_config.ts";
import { preflight, StackError } from "./preflight.ts";
import {
  prepareRuntimeDir,
  type RuntimeDir,
  RuntimeDirError,
} from "./prepare_runtime_dir.ts";
import {
  hostFacts,
  loadStackConfig,
  type StackConfig,
} from "./stack_config.ts";
import { Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";
import { bundleWorker } from "./worker_bundle.ts";

const PROJECT_DIR = new URL("..", import.meta.url).pathname;

// Readable by the account the workers run as (as root).
async function shareWithWorkers(dir: RuntimeDir, path: string) {
  if (dir.owner.gid === undefined) return;
  await Deno.chown(path, 0, dir.owner.gid);
  await Deno.chmod(path, 0o640);
}

// The workers' program: the image's bundle (WORKER_BUNDLE; as root a copy
// the account may read), else main.ts bundled now (worker_bundle.ts).
async function workerProgram(
  config: StackConfig,
  dir: RuntimeDir,
): Promise<string> {
  const { workerScript, geoDb } = dir.layout;
  if (config.workerBundle) {
    if (dir.owner.gid === undefined) return config.workerBundle;
    const bytes = await Deno.readFile(config.workerBundle);
    await dir.writeFile(workerScript, bytes);
    return workerScript;
  }
  await dir.clear(workerScript);
  await dir.clear(geoDb);
  const failed = await bundleWorker(workerScript, geoDb);
  if (failed === undefined) {
    await shareWithWorkers(dir, workerScript);
    await shareWithWorkers(dir, geoDb);
    return workerScript;
  }
  if (/No space left on device|os error 28/i.test(failed)) {
    throw new RuntimeDirError("no space left for the workers' program");
  }
  throw new StackError("could not bundle main.ts for the workers", 1, {
    output: failed,
  });
}

// nginx.conf, written and checked by nginx itself.
async function writeNginxConfig(
  config: StackConfig,
  dir: RuntimeDir,
  account: NginxAccount | undefined,
  ipv6: boolean,
): Promise<string> {
  const conf = dir.layout.nginxConf;
  const user = account && `${account.user} ${account.group}`;
  await dir.writeFile(conf, renderNginxConfig(config, { ipv6, user })).catch(
    (err) => {
      throw new RuntimeDirError(`cannot write nginx.conf (${String(err)})`);
    },
  );
  const check = await new Deno.Command("nginx", {
    args: ["-t", "-q", "-c", conf, "-e", "stderr"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!check.success) {
    throw new StackError("nginx rejected the rendered configuration", 2, {
      output: new TextDecoder().decode(check.stderr).trim(),
    });
  }
  return conf;
}

// The runtime directory with everything the children need, or nothing left
// behind when any of it fails.
async function prepare(
  config: StackConfig,
  account: NginxAccount | undefined,
  ipv6: boolean,
): Promise<{ dir: RuntimeDir; conf: string; program: string }> {
  const dir = await prepareRuntimeDir(config.runtimeDir, {
    uid: Deno.uid()!,
    gid: account?.gid,
  });
  try {
    const conf = await writeNginxConfig(config, dir, account, ipv6);
    return { dir, conf, program: await workerProgram(config, dir) };
  } catch (err) {
    await dir.discard();
    throw err;
  }
}

// Runs the children until a signal or a give-up; the exit code.
async function supervise(
  family: Family,
  conf: string,
  logger: Logger,
  started: number,
): Promise<number> {
  const { config } = family;
  const memory = config.memory;
  const supervisor = new Supervisor(logger, {
    processStates,
    oomKills: () => memory ? oomKills(catFile, memory) : Promise.resolve(0),
    memoryLimitMiB: memory && Math.round(memory.bytes / 2 ** 20),
  }, { ...POLICY, startTimeoutMs: config.startTimeout * 1000 });
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
      memory_limit_mib: memory && Math.round(memory.bytes / 2 ** 20),
      startup_ms: Math.round(performance.now() - started),
      project: PROJECT_DIR,
    });
  }
  return await supervisor.done;
}

// The whole run, as an exit code: errors are thrown below and mapped here.
async function run(relay: LogRelay): Promise<number> {
  const started = performance.now();
  let logger = relay.logger("info", { component: "stack" });
  let config: StackConfig | undefined;
  try {
    config = loadStackConfig((n) => Deno.env.get(n), await hostFacts());
    logger = relay.logger(config.logLevel, { component: "stack" });
    const { ipv6 } = await preflight(config);
    const account = Deno.uid() === 0 ? await nginxAccount() : undefined;
    const { dir, conf, program } = await prepare(config, account, ipv6);
    const code = await supervise(
      { config, relay, account, program },
      conf,
      logger,
      started,
    );
    if (code === 0) logger.info("stopped");
    await dir.discard();
    return code;
  } catch (err) {
    if (err instanceof ConfigError) logger.error(err.message);
    else if (err instanceof RuntimeDirError) {
      logger.error(
        `Invalid RUNTIME_DIR ${
          JSON.stringify(config?.runtimeDir)
        }: ${err.message}`,
      );
    } else if (err instanceof StackError) logger.error(err.message, err.fields);
    else logger.error("the stack failed", { error: String(err) });
    return err instanceof StackError
      ? err.code
      : err instanceof ConfigError || err instanceof RuntimeDirError
      ? 2
      : 1;
  }
}

/** Runs the stack until a signal stops it, then exits (`deno task stack`). */
export async function main(): Promise<never> {
  const relay = new LogRelay(Deno.stdout, Deno.stderr);
  const code = await run(relay);
  // What is queued is written first (a stalled reader: 1 s at most).
  await relay.flush();
  Deno.exit(code);
}
