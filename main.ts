/**
 * The service process: validates its settings, serves the app on TCP or a
 * Unix socket, and drains on SIGTERM/SIGINT.
 *
 * Run it with `deno task start` (production flags) or `deno task dev`.
 *
 * @module
 */
import meta from "./deno.json" with { type: "json" };
import { createApp } from "./service/app.ts";
import {
  type ClockFeed,
  type ClockState,
  readClockLines,
} from "./service/clock.ts";
import { COMMON_HEADERS } from "./service/common_headers.ts";
import {
  ConfigError,
  DEFAULTS,
  type EnvReader,
  loadServiceConfig,
  SERVICE_ENV,
  type ServiceConfig,
} from "./service/config.ts";
import {
  createLogger,
  type Logger,
  type LogSink,
  queuedSink,
} from "./service/log.ts";
import { loadCityZone } from "./service/geo.ts";

/** The service's version, from `deno.json`. */
export const VERSION: string = meta.version;

// A socket file left by a crash is removed; a live socket or any other kind
// of file is never touched.
async function clearStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new ConfigError(
      `Invalid SOCKET ${
        JSON.stringify(path)
      }: a file that is not a socket is in the way`,
    );
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
  } catch {
    await Deno.remove(path);
    return;
  }
  throw new ConfigError(
    `Invalid SOCKET ${
      JSON.stringify(path)
    }: another process is listening there`,
  );
}

let clockFeed: ClockFeed | undefined;

// The stack's supervisor writes the kernel's clock state to each worker's
// stdin (stack/kernel_clock.ts): read once, whatever serves it; a terminal
// is left alone. Elsewhere the clock is unknown.
function stdinClock(): (() => ClockState) | undefined {
  if (Deno.stdin.isTerminal()) return undefined;
  clockFeed ??= readClockLines(Deno.stdin.readable);
  return clockFeed.current;
}

/** Serves the app until {@linkcode Deno.HttpServer.shutdown}. */
export async function serve(
  config: ServiceConfig,
  logger: Logger,
): Promise<Deno.HttpServer<Deno.Addr>> {
  const app = createApp({
    trustedProxies: config.trustedProxies,
    forwardedHeader: config.forwardedHeader,
    logger,
    version: VERSION,
    origins: config.origins,
    cityZone: await loadCityZone(config.geoipCityDb),
    clockState: stdinClock(),
    clockMaxErrorMs: config.clockMaxErrorMs,
  });
  const common = {
    // Logged below, once the socket has its mode.
    onListen() {},
    onError(err: unknown) {
      logger.error("unhandled error", { error: String(err) });
      return new Response('{"error":"Internal server error"}\n', {
        status: 500,
        // On the socket, nginx adds the common headers (see answer.ts).
        headers: {
          ...(config.socket ? {} : COMMON_HEADERS),
          "content-type": "application/json",
        },
      });
    },
  };
  try {
    const server = config.socket
      ? await serveSocket(config.socket, common, app.fetch)
      : listenTcp(
        config,
        (hostname) =>
          Deno.serve({ ...common, hostname, port: config.port }, app.fetch),
      );
    logger.info("listening", { address: server.addr, version: VERSION });
    return server;
  } catch (err) {
    const message = err instanceof ConfigError
      ? undefined
      : listenError(err, config);
    throw message === undefined ? err : new ConfigError(message);
  }
}

async function serveSocket(
  path: string,
  options: Deno.ServeOptions,
  handler: Deno.ServeHandler,
): Promise<Deno.HttpServer<Deno.Addr>> {
  await clearStaleSocket(path);
  const server = Deno.serve({ ...options, path }, handler);
  // Only the service's user and group (nginx) may connect.
  await Deno.chmod(path, 0o660);
  return server;
}

// Binding `::` fails with EAFNOSUPPORT (no error class of its own) where the
// kernel has no IPv6 at all (booted with ipv6.disable=1); AddrNotAvailable
// is taken as the same. With IPv6 only disabled (sysctl disable_ipv6=1),
// `::` still binds, and takes IPv4.
const NO_IPV6 = /os error 97\b/;

/**
 * Calls `listen` with the configured host. The default host `::` takes both
 * families; on a machine without IPv6 the default falls back to IPv4 alone
 * (`ipv4Fallback`), where a HOST that was set does not.
 */
export function listenTcp<T>(
  config: ServiceConfig,
  listen: (hostname: string) => T,
): T {
  try {
    return listen(config.host);
  } catch (err) {
    const noIpv6 = err instanceof Deno.errors.AddrNotAvailable ||
      NO_IPV6.test(String(err));
    if (!config.ipv4Fallback || !noIpv6) throw err;
    return listen(config.ipv4Fallback);
  }
}

function listenError(err: unknown, config: ServiceConfig): string | undefined {
  const where = config.socket
    ? `SOCKET ${config.socket}`
    : `HOST ${config.host} and PORT ${config.port}`;
  if (err instanceof Deno.errors.NotCapable) {
    return `Cannot listen on ${where}: not allowed by this process's permission flags (start it with deno task start, or rebuild the executable with these settings)`;
  }
  if (err instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on ${where}: the address is in use`;
  }
  if (err instanceof Deno.errors.AddrNotAvailable) {
    return `Cannot listen on ${where}: the address is not available here`;
  }
  if (err instanceof Deno.errors.NotFound) {
    return `Cannot listen on ${where}: its directory does not exist`;
  }
  if (err instanceof Deno.errors.NotADirectory) {
    return `Cannot listen on ${where}: a part of its path is not a directory`;
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return `Cannot listen on ${where}: permission denied`;
  }
  // Whatever else the system refuses, the setting is still what to fix.
  return err instanceof Error
    ? `Cannot listen on ${where}: ${err.name}: ${err.message}`
    : undefined;
}

const USAGE = `ip-timestamp ${VERSION}: the current UTC time and the caller's IP
address over HTTP. Usage: deno task start (or dev), or the executable.
Settings (environment): ${SERVICE_ENV.join(" ")}
Docs: README.md. Stops on SIGTERM or SIGINT, after draining.`;

/**
 * The whole run as an exit code, as go-httpbin's `mainImpl`: `--help` and
 * `--version` print and end with 0, a {@linkcode ConfigError} is one line
 * and 2, anything else 1, a clean stop 0.
 */
export async function run(
  args: string[],
  env: EnvReader,
  sink?: LogSink,
): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (args.includes("--version")) {
    console.log(VERSION);
    return 0;
  }
  let logger = createLogger("error", {}, sink);
  try {
    const config = loadServiceConfig(env);
    logger = createLogger(config.logLevel, {}, sink);
    return await serveUntilStopped(await serve(config, logger), config, logger);
  } catch (err) {
    if (err instanceof ConfigError) logger.error(err.message, err.fields);
    else logger.error("the service failed", { error: String(err) });
    return err instanceof ConfigError ? 2 : 1;
  }
}

// Serves until SIGTERM or SIGINT, then drains: 0, or 1 when draining takes
// longer than it may.
function serveUntilStopped(
  server: Deno.HttpServer<Deno.Addr>,
  config: ServiceConfig,
  logger: Logger,
): Promise<number> {
  const { promise, resolve: exit } = Promise.withResolvers<number>();
  let stopping = false;
  async function stop(signal: Deno.Signal): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    const deadline = setTimeout(() => {
      logger.error("draining took too long; exiting", {
        seconds: DEFAULTS.drainSeconds,
      });
      exit(1);
    }, DEFAULTS.drainSeconds * 1000);
    await server.shutdown();
    if (config.socket) await Deno.remove(config.socket).catch(() => {});
    clearTimeout(deadline);
    logger.info("stopped");
    exit(0);
  }
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(signal, () => stop(signal));
    } catch {
      // Windows has no SIGTERM; Ctrl+C still arrives as SIGINT there.
    }
  }
  (async () => {
    // Bounded: each round waits for the server to fail again.
    for (let delay = 100;; delay = Math.min(delay * 2, 2000)) {
      const failed = await server.finished.then(() => undefined, (err) => err);
      if (stopping) return;
      if (failed === undefined) return exit(0);
      if (!OUT_OF_DESCRIPTORS.test(String(failed))) {
        logger.error("the service failed", { error: String(failed) });
        return exit(1);
      }
      server = await serveAgain(server, config, logger, delay);
    }
  })();
  return promise;
}

// Deno.serve has no timeout for headers that never finish
// (denoland/deno#3515), so each such connection holds a descriptor until
// the client closes it. When descriptors run out, accepting fails and the
// server stops.
const OUT_OF_DESCRIPTORS = /Too many open files|os error 2[34]\b/;

// Shutting the failed server down closes every connection it holds that
// has no request in flight (unfinished headers, idle keep-alive): the
// descriptors come back and the service listens again.
async function serveAgain(
  failed: Deno.HttpServer<Deno.Addr>,
  config: ServiceConfig,
  logger: Logger,
  delay: number,
): Promise<Deno.HttpServer<Deno.Addr>> {
  logger.error(
    "out of file descriptors: closing idle and unfinished connections, then listening again",
    { retry_ms: delay },
  );
  await failed.shutdown().catch(() => {});
  while (true) {
    await new Promise((r) => setTimeout(r, delay));
    try {
      return await serve(config, logger);
    } catch (err) {
      logger.error("cannot listen again yet", { error: String(err) });
      delay = Math.min(delay * 2, 2000);
    }
  }
}

if (import.meta.main) {
  // Logs never block the service; what is queued is written before exit.
  const { sink, flush } = queuedSink();
  const code = await run(Deno.args, (n) => Deno.env.get(n), sink);
  await flush();
  Deno.exit(code);
}
