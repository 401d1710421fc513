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
import { COMMON_HEADERS } from "./service/common_headers.ts";
import {
  ConfigError,
  DEFAULTS,
  loadServiceConfig,
  type ServiceConfig,
} from "./service/config.ts";
import { createLogger, type Logger } from "./service/log.ts";
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
  if (config.socket) {
    await clearStaleSocket(config.socket);
    const server = Deno.serve({ ...common, path: config.socket }, app.fetch);
    // Only the service's user and group (nginx) may connect.
    await Deno.chmod(config.socket, 0o660);
    logger.info("listening", { address: server.addr, version: VERSION });
    return server;
  }
  const server = listenTcp(
    config,
    (hostname) =>
      Deno.serve({ ...common, hostname, port: config.port }, app.fetch),
  );
  logger.info("listening", { address: server.addr, version: VERSION });
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

async function main(): Promise<void> {
  let config: ServiceConfig;
  try {
    config = loadServiceConfig((name) => Deno.env.get(name));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    createLogger("error").error(err.message);
    Deno.exit(2);
  }
  const logger = createLogger(config.logLevel);
  let server: Deno.HttpServer<Deno.Addr>;
  try {
    server = await serve(config, logger);
  } catch (err) {
    const message = err instanceof ConfigError
      ? err.message
      : listenError(err, config);
    if (message === undefined) throw err;
    logger.error(message);
    Deno.exit(2);
  }

  let stopping = false;
  async function stop(signal: Deno.Signal): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    const deadline = setTimeout(() => {
      logger.error("draining took too long; exiting", {
        seconds: DEFAULTS.drainSeconds,
      });
      Deno.exit(1);
    }, DEFAULTS.drainSeconds * 1000);
    await server.shutdown();
    if (config.socket) await Deno.remove(config.socket).catch(() => {});
    clearTimeout(deadline);
    logger.info("stopped");
    Deno.exit(0);
  }
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(signal, () => stop(signal));
    } catch {
      // Windows has no SIGTERM; Ctrl+C still arrives as SIGINT there.
    }
  }
  // Bounded: each round waits for the server to fail again.
  for (let delay = 100;; delay = Math.min(delay * 2, 2000)) {
    const failed = await server.finished.then(() => undefined, (err) => err);
    if (failed === undefined || stopping) return;
    if (!OUT_OF_DESCRIPTORS.test(String(failed))) throw failed;
    server = await serveAgain(server, config, logger, delay);
  }
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

if (import.meta.main) await main();
