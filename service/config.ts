/**
 * Configuration from the environment, validated once at start.
 *
 * The service's defaults live here (the stack's in stack/stack_config.ts);
 * `service/flags.ts`, `main.ts` and the stack read them from this module
 * so that no other file repeats a default.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import {
  type AddressRange,
  formatAddress,
  parseAddress,
  parseRange,
} from "./client_ip.ts";

/** Reads one environment variable (`Deno.env.get` or a test's map). */
export type EnvReader = (name: string) => string | undefined;

/**
 * A setting, or the machine's setup, that keeps a program from running:
 * the one error both programs map to exit code 2 (anything else is 1), its
 * message one log line naming what to fix.
 */
export class ConfigError extends Error {
  /** Always "ConfigError". */
  override name = "ConfigError";
  /** `message` for the log line, with `fields` beside it. */
  constructor(message: string, readonly fields: Record<string, unknown> = {}) {
    super(message);
  }
}

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Which forwarding header a trusted proxy writes. */
export const FORWARDED_HEADERS = ["x-forwarded-for", "forwarded"] as const;
/** One of {@linkcode FORWARDED_HEADERS}. */
export type ForwardedHeader = typeof FORWARDED_HEADERS[number];

/**
 * OpenTelemetry variables: Deno's runtime reads them itself at start (no
 * permission needed); the service validates them and the stack passes them
 * to every worker.
 */
export const OTEL_ENV = [
  "OTEL_DENO",
  "OTEL_SERVICE_NAME",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_BSP_SCHEDULE_DELAY",
] as const;

/** The hosts that reach the service over one address family only. */
export const ORIGIN_ENV = ["IPV4_ORIGIN", "IPV6_ORIGIN"] as const;

/** The variables the service (one worker) reads. */
export const SERVICE_ENV = [
  "HOST",
  "PORT",
  "SOCKET",
  "TRUSTED_PROXIES",
  "FORWARDED_HEADER",
  "LOG_LEVEL",
  "GEOIP_CITY_DB",
  "CLOCK_MAX_ERROR_MS",
  ...ORIGIN_ENV,
  ...OTEL_ENV,
] as const;

/** The service's defaults, in one place (the stack's: `STACK_DEFAULTS` in stack/stack_config.ts). */
export const DEFAULTS = {
  /** Both families where the host has IPv6 (Linux: IPV6_V6ONLY is off). */
  host: "::",
  /** Where the default host listens instead on a host without IPv6. */
  ipv4Host: "0.0.0.0",
  port: 8000,
  logLevel: "info" as LogLevel,
  forwardedHeader: "x-forwarded-for" as ForwardedHeader,
  /** Seconds a draining process may take before it is stopped hard. */
  drainSeconds: 10,
};

/** The settings of one service process. */
export interface ServiceConfig {
  /** TCP address to listen on (HOST). */
  host: string;
  /**
   * Set when HOST is unset: listen here instead if `host` cannot be bound
   * because the machine has no IPv6.
   */
  ipv4Fallback?: string;
  /** TCP port to listen on (PORT). */
  port: number;
  /** Listen on this Unix socket instead of TCP. */
  socket?: string;
  /** Proxies whose forwarding header is believed (TRUSTED_PROXIES). */
  trustedProxies: AddressRange[];
  /** The header those proxies write (FORWARDED_HEADER). */
  forwardedHeader: ForwardedHeader;
  /** The least severe level written (LOG_LEVEL). */
  logLevel: LogLevel;
  /** Origins reached over IPv4 only and IPv6 only, for the page. */
  origins: FamilyOrigins;
  /** The OpenTelemetry variables that are set, validated. */
  otel: Record<string, string>;
  /** An operator's MaxMind-format city database (GEOIP_CITY_DB). */
  geoipCityDb?: string;
  /** `/healthz` is a 503 while the clock's error may exceed this, ms. */
  clockMaxErrorMs?: number;
}

/** `IPV4_ORIGIN` and `IPV6_ORIGIN`, each unset or an http(s) origin. */
export interface FamilyOrigins {
  /** A host with an A record only. */
  ipv4?: string;
  /** A host with an AAAA record only. */
  ipv6?: string;
}

/** A whole number setting from `min` to `max`, or `fallback` when unset. */
export function integer(
  env: EnvReader,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(
      `Invalid ${name} ${
        JSON.stringify(raw)
      }: expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(raw);
}

/** One of `choices` (case-insensitive), or `fallback` when unset. */
export function oneOf<T extends string>(
  env: EnvReader,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  const value = raw.toLowerCase() as T;
  if (!choices.includes(value)) {
    throw new ConfigError(
      `Invalid ${name} ${JSON.stringify(raw)}: expected one of ${
        choices.join(", ")
      }`,
    );
  }
  return value;
}

/** The longest Unix socket path Linux takes (sun_path less its NUL). */
export const MAX_SOCKET_PATH = 107;

/** A plain absolute path in one spelling, or undefined when unset. */
export function absolutePath(env: EnvReader, name: string): string | undefined {
  const raw = env(name);
  if (raw === undefined || raw === "") return undefined;
  // The path also goes into permission flags and nginx config: keep it plain.
  if (!/^\/[A-Za-z0-9._\/-]+$/.test(raw) || raw.split("/").includes("..")) {
    throw new ConfigError(
      `Invalid ${name} ${
        JSON.stringify(raw)
      }: expected an absolute path of letters, digits, '.', '_', '-' and '/'`,
    );
  }
  // One spelling of the path: no "//", "/./" or trailing "/".
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  return "/" + parts.join("/");
}

/** TRUSTED_PROXIES: the proxies whose forwarding header is believed. */
export function trustedRanges(env: EnvReader): AddressRange[] {
  const raw = env("TRUSTED_PROXIES") ?? "";
  const entries = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return entries.map((entry) => {
    try {
      return parseRange(entry);
    } catch {
      throw new ConfigError(
        `Invalid TRUSTED_PROXIES entry ${
          JSON.stringify(entry)
        }: expected an IP address or CIDR range such as 10.0.0.0/8`,
      );
    }
  });
}

// Strict like client addresses (no zone id, no "0x7f.1" or "2130706433"),
// and in one spelling, since it also goes into the permission flags.
function hostSetting(env: EnvReader): string {
  const host = env("HOST") || DEFAULTS.host;
  if (host === "localhost") return host;
  const address = parseAddress(host);
  if (!address) {
    throw new ConfigError(
      `Invalid HOST ${
        JSON.stringify(host)
      }: expected an IP address (no zone id) or localhost`,
    );
  }
  return formatAddress(address);
}

function socketSetting(env: EnvReader): string | undefined {
  const socket = absolutePath(env, "SOCKET");
  if (socket !== undefined && socket.length > MAX_SOCKET_PATH) {
    throw new ConfigError(
      `Invalid SOCKET ${
        JSON.stringify(socket)
      }: longer than ${MAX_SOCKET_PATH} bytes, the limit for a Unix socket path`,
    );
  }
  return socket;
}

// An origin goes into the page and its Content-Security-Policy: it must be
// exactly what URL parsing makes of it (no path, query, user or stray bytes).
// CSP cannot name an IPv6 literal (its host-source grammar has no brackets;
// Chromium drops such a source and blocks the request): a name is needed.
function origin(
  env: EnvReader,
  name: string,
  family: "ipv4" | "ipv6",
): string | undefined {
  const raw = env(name);
  if (raw === undefined || raw === "") return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    // Reported below.
  }
  const host = url?.hostname ?? "";
  const literal = host.startsWith("[")
    ? "ipv6"
    : ipaddr.IPv4.isValidFourPartDecimal(host)
    ? "ipv4"
    : undefined;
  if (
    !url || !/^https?:$/.test(url.protocol) ||
    raw.replace(/\/$/, "") !== url.origin || literal === "ipv6" ||
    (literal !== undefined && literal !== family)
  ) {
    throw new ConfigError(
      `Invalid ${name} ${
        JSON.stringify(raw)
      }: expected an http(s) origin reached over ${family} only, such as https://${family}.example.com (a name, not an IPv6 literal, which a Content-Security-Policy cannot name)`,
    );
  }
  return url.origin;
}

/** The OpenTelemetry variables that are set, validated. */
export function otelSettings(env: EnvReader): Record<string, string> {
  const checks: Record<string, [RegExp, string]> = {
    OTEL_DENO: [/^(true|false)$/, "true or false"],
    OTEL_EXPORTER_OTLP_ENDPOINT: [
      /^https?:\/\/[^\s"'\\]+$/,
      "an http(s) URL such as http://collector:4318",
    ],
    OTEL_EXPORTER_OTLP_PROTOCOL: [
      /^http\/(protobuf|json)$/,
      "http/protobuf or http/json",
    ],
    OTEL_SERVICE_NAME: [/^[A-Za-z0-9._-]{1,64}$/, "a plain name"],
    OTEL_BSP_SCHEDULE_DELAY: [/^\d{1,6}$/, "milliseconds"],
  };
  const settings: Record<string, string> = {};
  for (const name of OTEL_ENV) {
    const raw = env(name);
    if (raw === undefined || raw === "") continue;
    const [pattern, expected] = checks[name] ?? [/^[\x20-\x7e]*$/, "text"];
    if (!pattern.test(raw)) {
      // The value may hold a credential (OTEL_EXPORTER_OTLP_HEADERS): not shown.
      throw new ConfigError(`Invalid ${name}: expected ${expected}`);
    }
    settings[name] = raw;
  }
  return settings;
}

/** IPV4_ORIGIN and IPV6_ORIGIN, validated. */
export function familyOrigins(env: EnvReader): FamilyOrigins {
  return {
    ipv4: origin(env, "IPV4_ORIGIN", "ipv4"),
    ipv6: origin(env, "IPV6_ORIGIN", "ipv6"),
  };
}

/**
 * CLOCK_MAX_ERROR_MS, or undefined (off). At most 16 s: beyond it the
 * kernel calls the clock unsynchronised anyway (NTP_PHASE_LIMIT).
 */
export function clockMaxError(env: EnvReader): number | undefined {
  const raw = env("CLOCK_MAX_ERROR_MS");
  if (raw === undefined || raw === "") return undefined;
  return integer(env, "CLOCK_MAX_ERROR_MS", 0, 1, 16_000);
}

/** Reads and validates the service's settings; throws {@linkcode ConfigError}. */
export function loadServiceConfig(env: EnvReader): ServiceConfig {
  return {
    host: hostSetting(env),
    ipv4Fallback: env("HOST") ? undefined : DEFAULTS.ipv4Host,
    port: integer(env, "PORT", DEFAULTS.port, 1, 65535),
    socket: socketSetting(env),
    trustedProxies: trustedRanges(env),
    forwardedHeader: oneOf(
      env,
      "FORWARDED_HEADER",
      FORWARDED_HEADERS,
      DEFAULTS.forwardedHeader,
    ),
    logLevel: oneOf(env, "LOG_LEVEL", LOG_LEVELS, DEFAULTS.logLevel),
    origins: familyOrigins(env),
    otel: otelSettings(env),
    geoipCityDb: absolutePath(env, "GEOIP_CITY_DB"),
    clockMaxErrorMs: clockMaxError(env),
  };
}
