/**
 * The stack supervisor: nginx on PORT (default 8080) in front of WORKERS
 * Deno workers, one Unix socket each. It is `deno task stack` here and the
 * container's command, so what the tests prove is what ships.
 *
 * Start: validate settings, refuse a busy PORT or a RUNTIME_DIR another
 * stack still serves from, render and check the nginx config, bundle
 * main.ts for the workers (unless the image ships the bundle), start them,
 * wait until each socket answers, start nginx, print one "ready" line.
 *
 * Running: a worker that dies is restarted with backoff, one that stops
 * answering its health probe is killed and replaced; if nginx dies the stack
 * exits 1; if the supervisor dies, the kernel stops its children
 * (`setpriv --pdeathsig`). SIGTERM/SIGINT/SIGHUP: nginx drains (SIGQUIT),
 * then the workers. Every line anyone writes goes through the log relay
 * (log_relay.ts): JSON, and dropped rather than blocking.
 *
 * @module
 */
import {
  ConfigError,
  DEFAULTS,
  loadStackConfig,
  MAX_SOCKET_PATH,
  type StackConfig,
} from "../service/config.ts";
import type { Logger } from "../service/log.ts";
import { LogRelay } from "./log_relay.ts";
import { leftoverWorker } from "./preflight.ts";
import { renderNginxConfig } from "./nginx_config.ts";
import { serviceFlags } from "./permissions.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";
import { type NginxAccount, nginxAccount } from "./nginx_user.ts";
import {
  prepareRuntimeDir,
  type RuntimeDir,
  RuntimeDirError,
} from "./prepare_runtime_dir.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PROJECT_DIR = new URL("..", import.meta.url).pathname;

/** `deno bundle` arguments that write main.ts, in one file, to `output`. */
export function bundleArgs(output: string): string[] {
  return ["bundle", "--frozen", "--quiet", "--output", output, MAIN];
}

/** The workers' program: the shipped bundle, or main.ts bundled at start. */
function workerProgram(config: StackConfig): string {
  return config.workerBundle ?? runtimeLayout(config.runtimeDir).workerScript;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asks a worker's socket for `/healthz`; true on a 200 within `timeoutMs`
 * (a stopped process still accepts connections, but never answers).
 */
// Not fetch through Deno.createHttpClient({ proxy: { transport: "unix" } }):
// Deno 2.9 then also wants --allow-net for the URL's host, a grant the
// supervisor does not otherwise need.
export async function probeSocket(
  path: string,
  timeoutMs = 1000,
): Promise<boolean> {
  let conn: Deno.UnixConn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ transport: "unix", path });
    await conn.write(new TextEncoder().encode(
      "GET /healthz HTTP/1.1\r\nHost: stack\r\nX-Real-IP: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ));
    const buffer = new Uint8Array(12);
    let read = 0;
    while (read < buffer.length) {
      const n = await conn.read(buffer.subarray(read));
      if (n === null) break;
      read += n;
    }
    return new TextDecoder().decode(buffer) === "HTTP/1.1 200";
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
}

// nginx refuses `listen [::]` on a kernel without IPv6; try a bind first.
function hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

async function nginxInstalled(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("nginx", {
      args: ["-v"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

// Why nginx could not bind PORT where it listens, or undefined; checked
// before anything is written, so that a busy port costs one line and leaves
// nothing behind.
function portProblem(port: number, ipv6: boolean): string | undefined {
  for (const hostname of ipv6 ? ["0.0.0.0", "::"] : ["0.0.0.0"]) {
    try {
      Deno.listen({ hostname, port }).close();
    } catch (err) {
      return err instanceof Deno.errors.AddrInUse
        ? "the address is in use by another program"
        : `cannot listen there (${String(err)})`;
    }
  }
  return undefined;
}

// The runtime directory, ready; or one line naming RUNTIME_DIR and exit 2.
async function runtimeDirOrExit(
  config: StackConfig,
  account: NginxAccount | undefined,
  logger: Logger,
): Promise<RuntimeDir> {
  try {
    return await prepareRuntimeDir(config.runtimeDir, {
      uid: Deno.uid()!,
      gid: account?.gid,
    });
  } catch (err) {
    const why = err instanceof RuntimeDirError ? err.message : String(err);
    logger.error(
      `Invalid RUNTIME_DIR ${JSON.stringify(config.runtimeDir)}: ${why}`,
    );
    return await exit(2);
  }
}

// A hung worker (stopped, or stuck in a loop) still accepts connections on
// its socket but never answers: it is replaced after this many probes in a
// row get no 200 within PROBE_TIMEOUT_MS, one every PROBE_INTERVAL_MS.
const PROBE_INTERVAL_MS = 1000;
const PROBE_TIMEOUT_MS = 1000;
const PROBE_FAILURES = 3;

// Children get SIGTERM from the kernel when the supervisor dies, however it
// dies (kill -9 included): nothing serves on without it.
const DIE_WITH_SUPERVISOR = ["setpriv", "--pdeathsig", "SIGTERM", "--"];

function tryKill(child: Deno.ChildProcess | undefined, signal: Deno.Signal) {
  try {
    child?.kill(signal);
  } catch {
    // Already gone.
  }
}

/** The stack's processes, and what keeps them running. */
class Supervisor {
  #nginx?: Deno.ChildProcess;
  #workers: (Deno.ChildProcess | undefined)[] = [];
  #stopping = false;

  constructor(
    readonly config: StackConfig,
    readonly logger: Logger,
    readonly gid: number | undefined,
  ) {}

  #spawnWorker(index: number): Deno.ChildProcess {
    const socket = workerSocket(this.config.runtimeDir, index);
    const child = new Deno.Command(DIE_WITH_SUPERVISOR[0], {
      args: [
        ...DIE_WITH_SUPERVISOR.slice(1),
        Deno.execPath(),
        "run",
        ...serviceFlags({ socket }),
        workerProgram(this.config),
      ],
      cwd: PROJECT_DIR,
      // Workers read only what concerns a socket worker.
      env: {
        SOCKET: socket,
        LOG_LEVEL: this.config.logLevel,
        HOST: "",
        PORT: "",
        // nginx passes the TCP peer and X-Forwarded-For; the worker
        // resolves the client by the service's rules.
        TRUSTED_PROXIES: this.config.trustedProxies.join(","),
        FORWARDED_HEADER: "",
        IPV4_ORIGIN: this.config.origins.ipv4 ?? "",
        IPV6_ORIGIN: this.config.origins.ipv6 ?? "",
        ...this.config.otel,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    output().relay(child.stdout, "json", "stdout", { worker: index });
    output().relay(child.stderr, "json", "stderr", { worker: index });
    return child;
  }

  async #waitReady(index: number, child: Deno.ChildProcess): Promise<boolean> {
    const socket = workerSocket(this.config.runtimeDir, index);
    let exited = false;
    child.status.then(() => (exited = true));
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      if (await probeSocket(socket)) {
        if (this.gid !== undefined) await Deno.chown(socket, 0, this.gid);
        return true;
      }
      await sleep(20);
    }
    return false;
  }

  // Kills a worker that stops answering; the loop in runWorker replaces it.
  async #watchHealth(index: number, child: Deno.ChildProcess): Promise<void> {
    const socket = workerSocket(this.config.runtimeDir, index);
    let exited = false;
    child.status.then(() => (exited = true));
    let failures = 0;
    while (!exited && !this.#stopping) {
      await sleep(PROBE_INTERVAL_MS);
      if (exited || this.#stopping) return;
      const ok = await probeSocket(socket, PROBE_TIMEOUT_MS);
      failures = ok ? 0 : failures + 1;
      if (failures >= PROBE_FAILURES && !exited && !this.#stopping) {
        this.logger.error("worker not answering; replacing it", {
          worker: index,
          pid: child.pid,
          failed_probes: failures,
        });
        tryKill(child, "SIGKILL");
        return;
      }
    }
  }

  /** Starts worker `index` and keeps it running; true once it first answers. */
  runWorker(index: number): Promise<boolean> {
    return new Promise((firstReady) => {
      (async () => {
        let delay = 100;
        let first = true;
        while (!this.#stopping) {
          const started = Date.now();
          const child = this.#spawnWorker(index);
          this.#workers[index] = child;
          const ready = await this.#waitReady(index, child);
          if (first) {
            first = false;
            firstReady(ready);
            if (!ready) return;
          } else if (ready) {
            this.logger.info("worker restarted", {
              worker: index,
              pid: child.pid,
            });
          }
          if (ready) this.#watchHealth(index, child);
          const status = await child.status;
          if (this.#stopping) return;
          if (Date.now() - started > 10_000) delay = 100;
          this.logger.warn("worker exited; restarting", {
            worker: index,
            code: status.code,
            signal: status.signal,
            delay_ms: delay,
          });
          await sleep(delay);
          delay = Math.min(delay * 2, 5_000);
        }
      })();
    });
  }

  /** Starts every worker; how many first answered. */
  async startWorkers(): Promise<number> {
    const ready = await Promise.all(
      Array.from({ length: this.config.workers }, (_, i) => this.runWorker(i)),
    );
    return ready.filter(Boolean).length;
  }

  /** Starts nginx; resolves once it has bound its port (its pid file). */
  async startNginx(conf: string): Promise<void> {
    // In a session of its own: a terminal's Ctrl+C reaches only the
    // supervisor, which drains nginx gracefully; if the master dies its
    // orphaned workers can be stopped as a group; and where the kernel
    // schedules by session (autogroup), nginx gets a group's share of the
    // CPU rather than one thread's among the workers' (+30% req/s here).
    const nginx = new Deno.Command("setsid", {
      args: [...DIE_WITH_SUPERVISOR, "nginx", "-c", conf, "-e", "stderr"],
      stdin: "null",
      // The access log (/dev/stdout) and the error log come through the
      // relay: JSON, and never blocking nginx on a stalled reader.
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    output().relay(nginx.stdout, "nginx-access", "stdout");
    output().relay(nginx.stderr, "nginx-error", "stderr");
    this.#nginx = nginx;
    nginx.status.then((status) => this.#nginxExited(nginx, status));
    const pidFile = runtimeLayout(this.config.runtimeDir).nginxPid;
    for (let i = 0; i < 500; i++) {
      try {
        if ((await Deno.readTextFile(pidFile)).trim() === String(nginx.pid)) {
          return;
        }
      } catch {
        // Not written yet.
      }
      await sleep(10);
    }
  }

  async #nginxExited(nginx: Deno.ChildProcess, status: Deno.CommandStatus) {
    if (this.#stopping) return;
    this.logger.error("nginx exited; stopping the stack", {
      code: status.code,
      signal: status.signal,
    });
    await new Deno.Command("kill", {
      args: ["-KILL", "--", `-${nginx.pid}`],
      stderr: "null",
    }).output().catch(() => {});
    await this.stopWorkers();
    await exit(1);
  }

  /** Stops every worker (SIGTERM: each drains) and waits for them. */
  async stopWorkers(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#workers.map(async (child) => {
      if (!child) return;
      tryKill(child, "SIGTERM");
      await child.status;
    }));
  }

  /** SIGTERM, SIGINT and SIGHUP (a closed terminal) stop the stack. */
  handleSignals(): void {
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      Deno.addSignalListener(signal, () => this.stop(signal));
    }
  }

  async stop(signal: string): Promise<never> {
    if (this.#stopping) return new Promise(() => {});
    this.#stopping = true;
    this.logger.info("shutting down", { signal });
    const hard = setTimeout(() => {
      this.logger.error("draining took too long; exiting");
      for (const child of [this.#nginx, ...this.#workers]) {
        tryKill(child, "SIGKILL");
      }
      exit(1);
    }, (DEFAULTS.drainSeconds + 2) * 1000);
    if (this.#nginx) {
      // SIGQUIT: nginx stops accepting and finishes what it has in flight.
      tryKill(this.#nginx, "SIGQUIT");
      await this.#nginx.status;
    }
    await this.stopWorkers();
    clearTimeout(hard);
    this.logger.info("stopped");
    return await exit(0);
  }
}

// Workers run main.ts bundled into one file: loading ipaddr.js, a CommonJS
// package, through Deno's npm support costs each worker ~7 MiB. The image
// ships that bundle (WORKER_BUNDLE, checked by bundleProblem), built once
// with the image; otherwise main.ts is bundled into the runtime dir now. A
// full disk is a bad setting (exit 2); a failed build exits 1. Nothing
// half-written stays.
async function prepareWorkerProgram(
  config: StackConfig,
  dir: RuntimeDir,
  logger: Logger,
): Promise<void> {
  if (config.workerBundle) return;
  await dir.clear(dir.layout.workerScript);
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: bundleArgs(dir.layout.workerScript),
    cwd: PROJECT_DIR,
    // Plain text for the log line if it fails.
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (bundle.success) return;
  await dir.discard();
  const output = new TextDecoder().decode(bundle.stderr).trim();
  if (/No space left on device|os error 28/i.test(output)) {
    logger.error(
      `Invalid RUNTIME_DIR ${
        JSON.stringify(config.runtimeDir)
      }: no space left for the workers' program`,
    );
    return await exit(2);
  }
  logger.error("could not bundle main.ts for the workers", { output });
  return await exit(1);
}

// Where the stack would live, before anything is written there: a PORT
// nginx can bind, a RUNTIME_DIR short enough for its sockets' paths.
function placeProblem(config: StackConfig, ipv6: boolean): string | undefined {
  const portIssue = portProblem(config.port, ipv6);
  if (portIssue) return `Invalid PORT ${config.port}: ${portIssue}`;
  const socket = workerSocket(config.runtimeDir, config.workers - 1);
  if (socket.length > MAX_SOCKET_PATH) {
    return `Invalid RUNTIME_DIR ${
      JSON.stringify(config.runtimeDir)
    }: too long, its sockets' paths would pass ${MAX_SOCKET_PATH} bytes`;
  }
  return undefined;
}

// A shipped WORKER_BUNDLE must be a file the supervisor can read.
async function bundleProblem(config: StackConfig): Promise<string | undefined> {
  if (!config.workerBundle) return undefined;
  try {
    if ((await Deno.stat(config.workerBundle)).isFile) return undefined;
  } catch {
    // Reported below, the same way as a directory.
  }
  return `Invalid WORKER_BUNDLE ${
    JSON.stringify(config.workerBundle)
  }: not a readable file`;
}

/**
 * Everything before the first process starts: PORT free, nginx's account,
 * the runtime directory, nginx.conf written and checked, the workers'
 * program. A bad setting ends it with one line and exit 2, and whatever it
 * wrote is removed.
 */
async function prepareStack(
  config: StackConfig,
  logger: Logger,
): Promise<{ dir: RuntimeDir; account?: NginxAccount }> {
  const ipv6 = hasIpv6();
  const problem = placeProblem(config, ipv6) ?? await bundleProblem(config) ??
    await leftoverWorker(config, probeSocket);
  if (problem) {
    logger.error(problem);
    return await exit(2);
  }
  let account: NginxAccount | undefined;
  if (Deno.uid() === 0) {
    try {
      account = await nginxAccount();
    } catch (err) {
      logger.error(String(err instanceof Error ? err.message : err));
      return await exit(1);
    }
  }
  const dir = await runtimeDirOrExit(config, account, logger);
  const conf = dir.layout.nginxConf;
  try {
    await dir.writeFile(
      conf,
      renderNginxConfig(config, {
        user: account && `${account.user} ${account.group}`,
        ipv6,
      }),
    );
  } catch (err) {
    await dir.discard();
    logger.error(
      `Invalid RUNTIME_DIR ${
        JSON.stringify(config.runtimeDir)
      }: cannot write nginx.conf (${String(err)})`,
    );
    return await exit(2);
  }
  const check = await new Deno.Command("nginx", {
    args: ["-t", "-q", "-c", conf, "-e", "stderr"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!check.success) {
    await dir.discard();
    logger.error("nginx rejected the rendered configuration", {
      output: new TextDecoder().decode(check.stderr).trim(),
    });
    return await exit(2);
  }
  await prepareWorkerProgram(config, dir, logger);
  return { dir, account };
}

// Every line goes through one relay (log_relay.ts); made on first use, so
// that importing this module starts nothing.
let relay: LogRelay | undefined;
function output(): LogRelay {
  return relay ??= new LogRelay(Deno.stdout, Deno.stderr);
}

// Exits once what is queued is written (a stalled reader: 1 s at most).
async function exit(code: number): Promise<never> {
  await output().flush();
  Deno.exit(code);
}

async function loadConfigOrExit(): Promise<StackConfig> {
  try {
    return loadStackConfig((name) => Deno.env.get(name));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    output().logger("error").error(err.message);
    return await exit(2);
  }
}

// Workers first (each answers its probe), then nginx in front of them.
async function startProcesses(
  supervisor: Supervisor,
  dir: RuntimeDir,
): Promise<void> {
  const ready = await supervisor.startWorkers();
  if (ready < supervisor.config.workers) {
    supervisor.logger.error("workers did not become ready", {
      ready,
      workers: supervisor.config.workers,
    });
    await supervisor.stopWorkers();
    await dir.discard();
    return await exit(1);
  }
  await supervisor.startNginx(dir.layout.nginxConf);
}

/** Runs the stack until a signal stops it (`deno task stack`). */
export async function main(): Promise<void> {
  const started = performance.now();
  const config = await loadConfigOrExit();
  const logger = output().logger(config.logLevel, { component: "stack" });
  if (!(await nginxInstalled())) {
    logger.error(
      "nginx is not installed or not on PATH: on Debian or Ubuntu run apt-get install nginx-light",
    );
    return await exit(2);
  }
  const { dir, account } = await prepareStack(config, logger);
  const supervisor = new Supervisor(config, logger, account?.gid);
  supervisor.handleSignals();
  await startProcesses(supervisor, dir);
  logger.info("ready", {
    port: config.port,
    workers: config.workers,
    rate_limit: config.rateLimit,
    startup_ms: Math.round(performance.now() - started),
    project: PROJECT_DIR,
  });
}
