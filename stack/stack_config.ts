/**
 * The stack's settings, validated once at start, and the facts about the
 * machine its defaults follow: cores (the CPU quota) and the cgroup's
 * memory limit. The workers' settings are the service's: validated here by
 * `loadServiceConfig`, from the environment the workers inherit.
 *
 * @module
 */
import {
  absolutePath,
  ConfigError,
  type EnvReader,
  integer,
  loadServiceConfig,
  SERVICE_ENV,
  type ServiceConfig,
} from "../service/config.ts";
import { formatRange } from "../service/client_ip.ts";
import { type MemoryLimit, memoryLimit } from "./kernel.ts";

// The service's variables the stack does not pass on: a worker listens on
// its own socket, and PORT is nginx's.
const NOT_PASSED = ["HOST", "PORT", "SOCKET"];

/** The variables the stack supervisor reads: its own and the workers'. */
export const STACK_ENV: string[] = [
  ...SERVICE_ENV.filter((name) => !NOT_PASSED.includes(name)),
  "PORT",
  "WORKERS",
  "NGINX_WORKERS",
  "RUNTIME_DIR",
  "XDG_RUNTIME_DIR",
  "HOME",
  "WORKER_BUNDLE",
  "RATE_LIMIT",
  "START_TIMEOUT",
];

/** The stack's defaults, in one place. */
export const STACK_DEFAULTS = {
  port: 8080,
  /** Requests per second per client address at the stack's edge. */
  rateLimit: 50,
  /** Seconds a start may take; 0: as long as the workers make progress. */
  startTimeout: 0,
  /**
   * What the cgroup is charged for a worker under the costliest load (its
   * own memory, at most 49 MiB measured, and half an nginx worker), and
   * for the supervisor, nginx and the mapped files besides (108 measured):
   * WORKERS' default fits the limit (docs/performance.md, Memory).
   */
  workerMiB: 64,
  baseMiB: 128,
};

/** The settings of the nginx + workers stack. */
export interface StackConfig {
  /** nginx's port (PORT). */
  port: number;
  /** Deno worker processes (WORKERS). */
  workers: number;
  /** nginx worker processes (NGINX_WORKERS). */
  nginxWorkers: number;
  /** Where the stack writes its sockets, config and files (RUNTIME_DIR). */
  runtimeDir: string;
  /** A bundle of main.ts for the workers (the image's); unset: main.ts. */
  workerBundle?: string;
  /** Requests per second per client address; 0 turns the limit off. */
  rateLimit: number;
  /** Seconds a child may take to start; 0: no limit (START_TIMEOUT). */
  startTimeout: number;
  /** TRUSTED_PROXIES in normal form (`network/bits`), rendered into nginx. */
  trustedProxies: string[];
  /** The cgroup's memory limit, if any: the workers were counted to fit. */
  memory?: MemoryLimit;
  /** The workers' settings (LOG_LEVEL is the supervisor's too). */
  service: ServiceConfig;
}

/** What the defaults depend on. */
export interface MachineFacts {
  /** Cores this process may use (the CPU quota, rounded up). */
  cpus: number;
  /** The cgroup's memory limit, if any. */
  memory?: MemoryLimit;
}

/** The facts of this machine and process. */
export async function machineFacts(): Promise<MachineFacts> {
  return {
    cpus: navigator.hardwareConcurrency,
    // Without `cat`, no limit: the supervisor says once it cannot run it.
    memory: await memoryLimit().catch(() => undefined),
  };
}

// As many workers as cores, as fit the memory limit beside nginx and the
// supervisor, and 64.
function workerCount(env: EnvReader, { cpus, memory }: MachineFacts): number {
  const { baseMiB, workerMiB } = STACK_DEFAULTS;
  const mib = (memory?.bytes ?? Infinity) / 2 ** 20;
  const fit = Math.min(Math.floor((mib - baseMiB) / workerMiB), 64);
  const file = memory?.file.split("/").pop();
  const limit = `the memory limit of ${Math.round(mib)} MiB (${file})`;
  if (fit < 1) {
    throw new ConfigError(
      `Invalid WORKERS: ${limit} leaves no room for one worker (the stack needs about ${
        baseMiB + workerMiB
      } MiB)`,
    );
  }
  const workers = integer(env, "WORKERS", Math.min(cpus, fit), 1, 64);
  if (workers > fit) {
    throw new ConfigError(
      `Invalid WORKERS ${workers}: ${workers} workers need about ${
        baseMiB + workers * workerMiB
      } MiB, more than ${limit}; at most ${fit} fit`,
    );
  }
  return workers;
}

// In a directory of the user's own, which no one else can take first (as
// anyone can a name in /tmp): XDG_RUNTIME_DIR, else HOME's cache.
function defaultRuntimeDir(env: EnvReader): string {
  for (const [name, under] of [["XDG_RUNTIME_DIR", ""], ["HOME", "/.cache"]]) {
    try {
      const dir = absolutePath(env, name);
      if (dir) return `${dir === "/" ? "" : dir}${under}/ip-timestamp`;
    } catch {
      // An unusual value is not ours to refuse: the next one serves.
    }
  }
  throw new ConfigError(
    "Invalid RUNTIME_DIR: unset, and neither XDG_RUNTIME_DIR nor HOME names a directory of this user's for it",
  );
}

/** Reads and validates the stack's settings; throws {@linkcode ConfigError}. */
export function loadStackConfig(
  env: EnvReader,
  host: MachineFacts = { cpus: navigator.hardwareConcurrency },
): StackConfig {
  const service = loadServiceConfig((n) =>
    NOT_PASSED.includes(n) ? undefined : env(n)
  );
  if (service.forwardedHeader !== "x-forwarded-for") {
    throw new ConfigError(
      `Invalid FORWARDED_HEADER ${
        JSON.stringify(service.forwardedHeader)
      }: behind nginx only x-forwarded-for is supported (nginx resolves the client address)`,
    );
  }
  const workers = workerCount(env, host);
  const D = STACK_DEFAULTS;
  return {
    port: integer(env, "PORT", D.port, 1, 65535),
    workers,
    // nginx shares the cores with the workers: one nginx process per two
    // workers beat one per core on 2 cores (docs/performance.md).
    nginxWorkers: integer(env, "NGINX_WORKERS", Math.ceil(workers / 2), 1, 64),
    runtimeDir: absolutePath(env, "RUNTIME_DIR") ?? defaultRuntimeDir(env),
    workerBundle: absolutePath(env, "WORKER_BUNDLE"),
    rateLimit: integer(env, "RATE_LIMIT", D.rateLimit, 0, 1e6),
    startTimeout: integer(env, "START_TIMEOUT", D.startTimeout, 0, 86_400),
    trustedProxies: service.trustedProxies.map(formatRange),
    memory: host.memory,
    service,
  };
}
