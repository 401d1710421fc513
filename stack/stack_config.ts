/**
 * The stack's settings, validated once at start, and the facts about the
 * machine its defaults follow: cores (the CPU quota), the cgroup's memory
 * limit, and the user it runs as.
 *
 * @module
 */
import {
  absolutePath,
  clockMaxError,
  ConfigError,
  DEFAULTS,
  type EnvReader,
  type FamilyOrigins,
  familyOrigins,
  FORWARDED_HEADERS,
  integer,
  LOG_LEVELS,
  type LogLevel,
  oneOf,
  ORIGIN_ENV,
  OTEL_ENV,
  otelSettings,
  trustedRanges,
} from "../service/config.ts";
import { formatRange } from "../service/client_ip.ts";
import { catFile, type MemoryLimit, memoryLimit } from "./cgroup.ts";

/** The variables the stack supervisor reads. */
export const STACK_ENV = [
  "PORT",
  "WORKERS",
  "NGINX_WORKERS",
  "RUNTIME_DIR",
  "XDG_RUNTIME_DIR",
  "HOME",
  "WORKER_BUNDLE",
  "GEOIP_CITY_DB",
  "RATE_LIMIT",
  "START_TIMEOUT",
  "TRUSTED_PROXIES",
  "FORWARDED_HEADER",
  "LOG_LEVEL",
  "CLOCK_MAX_ERROR_MS",
  ...ORIGIN_ENV,
  ...OTEL_ENV,
] as const;

/** The stack's defaults, in one place. */
export const STACK_DEFAULTS = {
  port: 8080,
  /** Requests per second per client address at the stack's edge. */
  rateLimit: 50,
  /** Seconds a start may take; 0: as long as the workers make progress. */
  startTimeout: 0,
  /**
   * What one worker needs under load (measured: 55–72 MiB RSS with the
   * country database, docs/geo.md), and what the supervisor (at most 64)
   * and nginx need besides: the default worker count fits the cgroup's
   * memory limit with these.
   */
  workerMiB: 80,
  baseMiB: 96,
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
  /**
   * A prebuilt bundle of main.ts for the workers (the container ships one);
   * unset, the supervisor bundles main.ts into the runtime dir at start.
   */
  workerBundle?: string;
  /** An operator's city database, passed to every worker (GEOIP_CITY_DB). */
  geoipCityDb?: string;
  /** Requests per second per client address; 0 turns the limit off. */
  rateLimit: number;
  /** Seconds a child may take to start; 0: no limit (START_TIMEOUT). */
  startTimeout: number;
  /** The entries in normal form (`network/bits`), rendered into nginx. */
  trustedProxies: string[];
  /** The least severe level written (LOG_LEVEL). */
  logLevel: LogLevel;
  /** Passed to every worker. */
  origins: FamilyOrigins;
  /** Passed to every worker. */
  otel: Record<string, string>;
  /** Passed to every worker: /healthz says 503 past this error bound. */
  clockMaxErrorMs?: number;
  /** The cgroup's memory limit, if any: the workers were counted to fit. */
  memory?: MemoryLimit;
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
    memory: await memoryLimit(catFile),
  };
}

const MIB = 1024 * 1024;

// How many workers fit the memory limit next to nginx and the supervisor.
function workersThatFit(memory: MemoryLimit | undefined): number {
  if (!memory) return Infinity;
  const { workerMiB, baseMiB } = STACK_DEFAULTS;
  return Math.floor((memory.bytes / MIB - baseMiB) / workerMiB);
}

function workerCount(env: EnvReader, host: MachineFacts): number {
  const fit = workersThatFit(host.memory);
  const limit = host.memory &&
    `the memory limit of ${Math.round(host.memory.bytes / MIB)} MiB (${
      host.memory.file.split("/").pop()
    })`;
  if (fit < 1) {
    throw new ConfigError(
      `Invalid WORKERS: ${limit} leaves no room for one worker (the stack needs about ${
        STACK_DEFAULTS.baseMiB + STACK_DEFAULTS.workerMiB
      } MiB)`,
    );
  }
  const workers = integer(env, "WORKERS", Math.min(host.cpus, fit, 64), 1, 64);
  if (workers > fit) {
    throw new ConfigError(
      `Invalid WORKERS ${workers}: ${workers} workers need about ${
        STACK_DEFAULTS.baseMiB + workers * STACK_DEFAULTS.workerMiB
      } MiB, more than ${limit}; at most ${fit} fit`,
    );
  }
  return workers;
}

// In a directory of the user's own, which no other user can take first (as
// anyone can a name in /tmp): the XDG runtime directory, else the home's
// cache.
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

function forwardedHeader(env: EnvReader): void {
  const header = oneOf(
    env,
    "FORWARDED_HEADER",
    FORWARDED_HEADERS,
    DEFAULTS.forwardedHeader,
  );
  if (header !== "x-forwarded-for") {
    throw new ConfigError(
      `Invalid FORWARDED_HEADER ${
        JSON.stringify(header)
      }: behind nginx only x-forwarded-for is supported (nginx resolves the client address)`,
    );
  }
}

/** Reads and validates the stack's settings; throws {@linkcode ConfigError}. */
export function loadStackConfig(
  env: EnvReader,
  host: MachineFacts = { cpus: navigator.hardwareConcurrency },
): StackConfig {
  forwardedHeader(env);
  const workers = workerCount(env, host);
  return {
    port: integer(env, "PORT", STACK_DEFAULTS.port, 1, 65535),
    workers,
    // nginx shares the cores with the workers: one nginx process per two
    // workers beat one per core on 2 cores (docs/performance.md).
    nginxWorkers: integer(env, "NGINX_WORKERS", Math.ceil(workers / 2), 1, 64),
    runtimeDir: absolutePath(env, "RUNTIME_DIR") ?? defaultRuntimeDir(env),
    workerBundle: absolutePath(env, "WORKER_BUNDLE"),
    geoipCityDb: absolutePath(env, "GEOIP_CITY_DB"),
    rateLimit: integer(env, "RATE_LIMIT", STACK_DEFAULTS.rateLimit, 0, 1e6),
    startTimeout: integer(
      env,
      "START_TIMEOUT",
      STACK_DEFAULTS.startTimeout,
      0,
      86_400,
    ),
    trustedProxies: trustedRanges(env).map(formatRange),
    logLevel: oneOf(env, "LOG_LEVEL", LOG_LEVELS, DEFAULTS.logLevel),
    origins: familyOrigins(env),
    otel: otelSettings(env),
    clockMaxErrorMs: clockMaxError(env),
    memory: host.memory,
  };
}
