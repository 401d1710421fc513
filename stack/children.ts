/**
 * The stack's children, each as the supervisor sees it: how it is spawned,
 * probed and stopped. nginx and the workers differ only here. Every child
 * dies with the supervisor (`setpriv --pdeathsig`), however it dies.
 *
 * @module
 */
import type { LogFields } from "../service/log.ts";
import type { ClockPublisher } from "./kernel_clock.ts";
import type { LogRelay } from "./log_relay.ts";
import { serviceFlags } from "../service/flags.ts";
import { runtimeLayout, workerSocket } from "./runtime_dir.ts";
import type { StackConfig } from "./stack_config.ts";

/** One child, for the supervisor. */
export interface ChildSpec {
  /** Its name in messages. */
  name: string;
  /** Its fields in log lines. */
  fields: LogFields;
  /** Starts it, its output relayed. */
  spawn(): Deno.ChildProcess;
  /** Whether it answers now; `"foreign"`: another process in its place. */
  probe(pid: number): Promise<boolean | "foreign">;
  /** The signal that asks it to finish what it has in flight and exit. */
  stopSignal: Deno.Signal;
  /** It leads a process group (nginx's workers: watched, killed with it). */
  group?: boolean;
}

const PDEATHSIG = ["--pdeathsig", "SIGTERM", "--"];
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** What the supervisor probes; its host is in its --allow-net, never resolved. */
export const PROBE_URL = "http://stack/livez";

function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Not there.
  }
}

/**
 * Whether `/livez` on the Unix socket `path` answers `status` within a
 * second, connecting included (a stopped listener's backlog fills, and
 * connect blocks).
 */
export async function askHealth(path: string, status = 200): Promise<boolean> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
  try {
    const answer = await fetch(PROBE_URL, {
      client,
      headers: { "x-real-ip": "127.0.0.1" },
      signal: AbortSignal.timeout(1000),
    });
    await answer.body?.cancel();
    return answer.status === status;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/**
 * Worker `index`: main.ts (or the image's bundle of it) on its own socket,
 * which must stay the one it bound: its inode at the first good probe.
 */
export function workerSpec(
  config: StackConfig,
  relay: LogRelay,
  clock: ClockPublisher,
  index: number,
): ChildSpec {
  const socket = workerSocket(config.runtimeDir, index);
  let inode: number | null | undefined;
  return {
    name: `worker ${index}`,
    fields: { worker: index },
    spawn() {
      // Whatever stands in its place (a crash's socket, another process's).
      removeIfThere(socket);
      inode = undefined;
      const child = new Deno.Command("setpriv", {
        args: [
          ...PDEATHSIG,
          Deno.execPath(),
          "run",
          ...serviceFlags({ ...config.service, socket }),
          // Its young generation capped: 44–49 MiB of its own under nonstop
          // lookups, not 101 (docs/performance.md, Memory).
          "--v8-flags=--max-semi-space-size=2",
          config.workerBundle ?? MAIN,
        ],
        cwd: config.runtimeDir,
        // The rest is the stack's environment, validated by loadStackConfig.
        env: {
          SOCKET: socket,
          HOST: "",
          PORT: "",
          NO_COLOR: "1",
          // The image's bundle imports the country database file as bytes.
          DENO_UNSTABLE_RAW_IMPORTS: "1",
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      clock.add(child.stdin);
      relay.relay(child.stdout, "json", "stdout", { worker: index });
      relay.relay(child.stderr, "json", "stderr", { worker: index });
      return child;
    },
    async probe() {
      if (!await askHealth(socket)) return false;
      const now = await Deno.lstat(socket).then((i) => i.ino, () => null);
      inode ??= now;
      return inode === now || "foreign";
    },
    stopSignal: "SIGTERM",
  };
}

/** nginx, in front of the workers, with the config at `conf`. */
export function nginxSpec(
  config: StackConfig,
  relay: LogRelay,
  conf: string,
): ChildSpec {
  const { nginxPid, nginxAlive } = runtimeLayout(config.runtimeDir);
  return {
    name: "nginx",
    fields: { component: "nginx" },
    group: true,
    spawn() {
      // A killed nginx leaves its socket behind, and would not bind it again.
      removeIfThere(nginxAlive);
      // In a session of its own: a terminal's Ctrl+C reaches only the
      // supervisor, which drains nginx; its workers die as a group; and
      // under autogroup scheduling it gets a group's CPU (+30% req/s).
      const child = new Deno.Command("setsid", {
        args: ["setpriv", ...PDEATHSIG, "nginx", "-c", conf, "-e", "stderr"],
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
      return written.trim() === String(pid) &&
        await askHealth(nginxAlive, 204);
    },
    // nginx stops accepting and finishes what it has in flight.
    stopSignal: "SIGQUIT",
  };
}
