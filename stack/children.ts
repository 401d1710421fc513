/**
 * The stack's children, each as the supervisor sees it: how it is spawned,
 * probed, stopped and killed. nginx and the workers differ only here.
 *
 * Every child dies with the supervisor (`setpriv --pdeathsig`). When the
 * supervisor runs as root, every process that reads a request runs as the
 * stack's own account (nginx_user.ts): the workers are started as it, and
 * nginx's master (which reads no request) drops its worker processes to it
 * (`user` in nginx.conf), as nginx is built to.
 *
 * @module
 */
import type { LogFields } from "../service/log.ts";
import type { LogRelay } from "./log_relay.ts";
import type { NginxAccount } from "./nginx_user.ts";
import { serviceFlags } from "./permissions.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";
import type { StackConfig } from "./stack_config.ts";
import { WORKER_ENV } from "./worker_bundle.ts";

/** One kind of child, for the supervisor. */
export interface ChildSpec {
  /** Its name in log lines. */
  name: string;
  /** Its fields in log lines. */
  fields: LogFields;
  /** Starts it; its output goes through the relay. */
  spawn(): Deno.ChildProcess;
  /** Whether it answers now (a stopped process accepts, never answers). */
  probe(pid: number): Promise<boolean>;
  /** Asks it to finish what it has in flight and exit. */
  stop(child: Deno.ChildProcess): void;
  /** Ends it now, with whatever it started. */
  kill(child: Deno.ChildProcess): void;
  /**
   * Whether its own child processes are watched too: a stopped one is
   * killed for the child to restart it (nginx's worker processes).
   */
  watchChildren?: boolean;
}

// Children get SIGTERM from the kernel when the supervisor dies, however it
// dies (kill -9 included); as root they drop to the stack's account first.
function guard(account: NginxAccount | undefined): string[] {
  const drop = account
    ? [`--reuid=${account.uid}`, `--regid=${account.gid}`, "--clear-groups"]
    : [];
  return ["setpriv", ...drop, "--pdeathsig", "SIGTERM", "--"];
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // Already gone.
  }
}

/**
 * Kills a process the supervisor did not spawn itself (nginx's worker
 * processes; a negative pid: a process group): Deno.kill would need every
 * run permission, `kill` needs one.
 */
export async function killPid(pid: number): Promise<void> {
  await new Deno.Command("kill", {
    args: ["-KILL", "--", String(pid)],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
}

/**
 * Asks for `/healthz` over a new connection and reads the status line: true
 * when it matches `status` within `timeoutMs`, connecting included (a Unix
 * socket whose listener is stopped fills its backlog, and connect blocks).
 */
async function askHealth(
  connect: () => Promise<Deno.Conn>,
  status: RegExp,
  timeoutMs: number,
): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  let over = false;
  const close = () => {
    try {
      conn?.close();
    } catch {
      // Closed already.
    }
  };
  const ask = async () => {
    conn = await connect();
    if (over) {
      close();
      return false;
    }
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
    return status.test(new TextDecoder().decode(buffer));
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([ask().catch(() => false), late]);
  } finally {
    over = true;
    clearTimeout(timer);
    close();
  }
}

/** Whether a worker's socket answers `/healthz` with a 200 in time. */
// Not fetch through Deno.createHttpClient({ proxy: { transport: "unix" } }):
// Deno 2.9 then also wants --allow-net for the URL's host.
export function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return askHealth(
    () => Deno.connect({ transport: "unix", path }),
    /^HTTP\/1\.1 200$/,
    timeoutMs,
  );
}

/** What the children share: settings, the relay, the account, the program. */
export interface Family {
  /** The stack's settings. */
  config: StackConfig;
  /** Where their output goes. */
  relay: LogRelay;
  /** As root, the account every child runs as. */
  account?: NginxAccount;
  /** The workers' program (a bundle of main.ts). */
  program: string;
}

/** Worker `index`: main.ts on its own Unix socket. */
export function workerSpec(family: Family, index: number): ChildSpec {
  const { config, relay } = family;
  const socket = workerSocket(config.runtimeDir, index);
  return {
    name: `worker ${index}`,
    fields: { worker: index },
    spawn() {
      const [cmd, ...args] = guard(family.account);
      const child = new Deno.Command(cmd, {
        args: [
          ...args,
          Deno.execPath(),
          "run",
          ...serviceFlags({ socket, geoipCityDb: config.geoipCityDb }),
          family.program,
        ],
        // The program is one self-contained file: no project to look up.
        cwd: config.runtimeDir,
        env: {
          SOCKET: socket,
          LOG_LEVEL: config.logLevel,
          HOST: "",
          PORT: "",
          // nginx passes the TCP peer and X-Forwarded-For; the worker
          // resolves the client by the service's rules.
          TRUSTED_PROXIES: config.trustedProxies.join(","),
          FORWARDED_HEADER: "",
          IPV4_ORIGIN: config.origins.ipv4 ?? "",
          IPV6_ORIGIN: config.origins.ipv6 ?? "",
          NO_COLOR: "1",
          GEOIP_CITY_DB: config.geoipCityDb ?? "",
          ...WORKER_ENV,
          ...config.otel,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      relay.relay(child.stdout, "json", "stdout", { worker: index });
      relay.relay(child.stderr, "json", "stderr", { worker: index });
      return child;
    },
    probe: () => probeSocket(socket),
    stop: (child) => signal(child, "SIGTERM"),
    kill: (child) => signal(child, "SIGKILL"),
  };
}

/** nginx, in front of the workers. */
export function nginxSpec(family: Family, conf: string): ChildSpec {
  const { config, relay } = family;
  const { nginxPid, nginxAlive } = runtimeLayout(config.runtimeDir);
  return {
    name: "nginx",
    fields: { component: "nginx" },
    watchChildren: true,
    spawn() {
      // A killed nginx leaves its socket behind, and would not bind it again.
      try {
        Deno.removeSync(nginxAlive);
      } catch {
        // Not there.
      }
      // In a session of its own: a terminal's Ctrl+C reaches only the
      // supervisor, which drains nginx; its workers can be killed as a
      // group; and where the kernel schedules by session (autogroup),
      // nginx gets a group's share of the CPU (+30% req/s here).
      const child = new Deno.Command("setsid", {
        args: [...guard(undefined), "nginx", "-c", conf, "-e", "stderr"],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      relay.relay(child.stdout, "nginx-access", "stdout");
      relay.relay(child.stderr, "nginx-error", "stderr");
      return child;
    },
    // Ready once it wrote its pid file (it has bound its ports), alive
    // while it answers on its own socket (nginx.conf).
    async probe(pid) {
      const written = await Deno.readTextFile(nginxPid).catch(() => "");
      if (written.trim() !== String(pid)) return false;
      return await askHealth(
        () => Deno.connect({ transport: "unix", path: nginxAlive }),
        /^HTTP\/1\.1 204$/,
        1000,
      );
    },
    // SIGQUIT: nginx stops accepting and finishes what it has in flight.
    stop: (child) => signal(child, "SIGQUIT"),
    // Its workers too, which would otherwise keep the port.
    kill: (child) => void killPid(-child.pid),
  };
}

/** A process's pid, parent and whether it is stopped, from `ps`. */
export interface ProcessState {
  /** Its pid. */
  pid: number;
  /** Its parent's pid. */
  ppid: number;
  /** Stopped by a signal or a tracer (state T or t). */
  stopped: boolean;
}

/**
 * The state of `pids` and of the children of `parents`, from one `ps`
 * (Deno lets a program read /proc only with every permission).
 */
export async function processStates(
  pids: number[],
  parents: number[],
): Promise<ProcessState[]> {
  if (pids.length + parents.length === 0) return [];
  const args = ["-o", "pid=,ppid=,stat="];
  if (pids.length) args.push("-p", pids.join(","));
  if (parents.length) args.push("--ppid", parents.join(","));
  const out = await new Deno.Command("ps", {
    args,
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!out) return [];
  return new TextDecoder().decode(out.stdout).trim().split("\n")
    .filter(Boolean).map((line) => {
      const [pid, ppid, stat] = line.trim().split(/\s+/);
      return {
        pid: Number(pid),
        ppid: Number(ppid),
        stopped: /^[Tt]/.test(stat),
      };
    });
}
