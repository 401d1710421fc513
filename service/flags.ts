/**
 * The service's permission flags, in one place: for `deno task start` and
 * `dev` (printed by `deno task flags`), for the executable (`deno task
 * compile`), and for each of the stack's workers.
 *
 * @module
 */
import { ConfigError, SERVICE_ENV, type ServiceConfig } from "./config.ts";

/** Flags that keep every process from fetching or resolving code at start. */
export const FROZEN_FLAGS = ["--cached-only", "--frozen"];

/**
 * The service's flags: the env variables it reads, and either the exact
 * socket path (net, read, write) or the exact listen address (for the
 * default HOST, `[::]:PORT` and its IPv4 fallback `0.0.0.0:PORT`).
 */
export function serviceFlags(config: Partial<ServiceConfig>): string[] {
  const flags = [...FROZEN_FLAGS, `--allow-env=${SERVICE_ENV.join(",")}`];
  // The operator's city database (GEOIP_CITY_DB), read once at start.
  const read = config.geoipCityDb ? [config.geoipCityDb] : [];
  if (config.socket) {
    const s = config.socket;
    flags.push(`--allow-net=unix:${s}`, `--allow-write=${s}`);
    read.unshift(s);
  } else if (config.host && config.port) {
    // The default host's IPv4 fallback too: the grant cannot know whether
    // the machine that runs it has IPv6.
    const hosts = [config.host, config.ipv4Fallback].filter((h) => h);
    flags.push(
      `--allow-net=${
        hosts.map((h) => `${h!.includes(":") ? `[${h}]` : h}:${config.port}`)
          .join(",")
      }`,
    );
  }
  if (read.length > 0) flags.push(`--allow-read=${read.join(",")}`);
  return flags;
}

/**
 * `deno compile` options: the service's flags, baked into the executable,
 * and the target and output name (`TARGET` picks a cross-compile target).
 */
export function compileFlags(
  config: ServiceConfig,
  target: string | undefined,
): string[] {
  if (target !== undefined && !/^[a-z0-9_]+(-[a-z0-9_]+){2,3}$/.test(target)) {
    throw new ConfigError(`Invalid TARGET ${JSON.stringify(target)}`);
  }
  return [
    // The executable fetches nothing at start anyway; compiling it may have
    // to download Deno's runtime for the target.
    ...serviceFlags(config).filter((f) => f !== "--cached-only"),
    // Only the npm packages main.ts loads, not the test-only ones the lock
    // also pins.
    "--exclude-unused-npm",
    ...(target ? ["--target", target] : []),
    "--output",
    target ? `dist/ip-timestamp-${target}` : "dist/ip-timestamp",
  ];
}
