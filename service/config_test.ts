// The service's settings: defaults, validation, and the one-line errors that stop a start.
import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULTS,
  type EnvReader,
  loadServiceConfig,
} from "./config.ts";
import { loadStackConfig } from "../stack/stack_config.ts";

// Every real process has a HOME, where the stack's RUNTIME_DIR defaults to.
const env = (vars: Record<string, string>) => (name: string) =>
  ({ HOME: "/home/ann", ...vars })[name];

Deno.test("defaults apply when nothing is set", () => {
  const service = loadServiceConfig(env({}));
  assert.equal(service.host, DEFAULTS.host);
  assert.equal(service.port, DEFAULTS.port);
  assert.equal(service.socket, undefined);
  assert.deepEqual(service.trustedProxies, []);
  assert.equal(service.clockMaxErrorMs, undefined, "the clock check is off");
});

Deno.test("bad settings are refused with a message naming the variable", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: "0" }, /^Invalid PORT "0"/],
    [{ PORT: "65536" }, /^Invalid PORT/],
    [{ PORT: "80a" }, /^Invalid PORT/],
    [{ PORT: "-1" }, /^Invalid PORT/],
    [{ HOST: "example.com" }, /^Invalid HOST/],
    [{ SOCKET: "relative.sock" }, /^Invalid SOCKET/],
    [{ SOCKET: "/tmp/a b.sock" }, /^Invalid SOCKET/],
    [{ SOCKET: "/tmp/../etc/x" }, /^Invalid SOCKET/],
    [
      { TRUSTED_PROXIES: "10.0.0.0/8,nope" },
      /^Invalid TRUSTED_PROXIES entry "nope"/,
    ],
    [{ TRUSTED_PROXIES: "10.0.0.0/33" }, /^Invalid TRUSTED_PROXIES/],
    [
      { LOG_LEVEL: "verbose" },
      /^Invalid LOG_LEVEL "verbose": expected one of debug, info, warn, error/,
    ],
    [{ FORWARDED_HEADER: "x-real-ip" }, /^Invalid FORWARDED_HEADER/],
    [
      { CLOCK_MAX_ERROR_MS: "0" },
      /^Invalid CLOCK_MAX_ERROR_MS "0": expected a whole number from 1 to 16000/,
    ],
    [{ CLOCK_MAX_ERROR_MS: "2.5" }, /^Invalid CLOCK_MAX_ERROR_MS/],
    [{ CLOCK_MAX_ERROR_MS: "-5" }, /^Invalid CLOCK_MAX_ERROR_MS/],
    [{ CLOCK_MAX_ERROR_MS: "16001" }, /^Invalid CLOCK_MAX_ERROR_MS/],
    [{ CLOCK_MAX_ERROR_MS: "100ms" }, /^Invalid CLOCK_MAX_ERROR_MS/],
  ];
  for (const [vars, message] of bad) {
    assert.throws(() => loadServiceConfig(env(vars)), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, message);
      return true;
    });
  }
});

Deno.test("good settings are read as given", () => {
  const c = loadServiceConfig(env({
    HOST: "::",
    PORT: "9000",
    SOCKET: "/run/its/w.sock",
    TRUSTED_PROXIES: " 10.0.0.0/8 , ::1 ",
    LOG_LEVEL: "DEBUG",
    FORWARDED_HEADER: "forwarded",
    CLOCK_MAX_ERROR_MS: "250",
  }));
  assert.equal(c.clockMaxErrorMs, 250);
  assert.equal(c.port, 9000);
  assert.equal(c.socket, "/run/its/w.sock");
  assert.equal(c.trustedProxies.length, 2);
  assert.equal(c.logLevel, "debug");
  assert.equal(c.forwardedHeader, "forwarded");
});

Deno.test("IPV4_ORIGIN and IPV6_ORIGIN must be plain http(s) origins of their family", () => {
  const good = {
    IPV4_ORIGIN: "https://ipv4.example.com",
    IPV6_ORIGIN: "http://ipv6.example.com:8080/",
  };
  const stack = (e: EnvReader) => loadStackConfig(e).service;
  for (const load of [loadServiceConfig, stack]) {
    assert.deepEqual(load(env(good)).origins, {
      ipv4: "https://ipv4.example.com",
      ipv6: "http://ipv6.example.com:8080",
    });
    assert.deepEqual(load(env({})).origins, {
      ipv4: undefined,
      ipv6: undefined,
    });
  }
  for (
    const [name, raw] of [
      ["IPV4_ORIGIN", "ipv4.example.com"],
      ["IPV4_ORIGIN", "ftp://ipv4.example.com"],
      ["IPV4_ORIGIN", "https://ipv4.example.com/path"],
      ["IPV4_ORIGIN", "https://user@ipv4.example.com"],
      ["IPV4_ORIGIN", "https://ipv4.example.com?x"],
      ["IPV4_ORIGIN", "https://a.example.com 'unsafe-inline'"],
      ["IPV4_ORIGIN", "http://[::1]:8080"],
      ["IPV6_ORIGIN", "http://[::1]:8080"],
      ["IPV6_ORIGIN", "http://127.0.0.1:8080"],
      ["IPV6_ORIGIN", "javascript:alert(1)"],
    ]
  ) {
    for (const load of [loadServiceConfig, loadStackConfig]) {
      assert.throws(() => load(env({ [name]: raw })), {
        name: "ConfigError",
        message: new RegExp(`^Invalid ${name} `),
      }, raw);
    }
  }
});

Deno.test("OpenTelemetry settings are checked, kept for the workers, never echoed", () => {
  const otel = {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
    OTEL_SERVICE_NAME: "ip-timestamp",
    OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer secret",
  };
  assert.deepEqual(loadServiceConfig(env(otel)).otel, otel);
  assert.deepEqual(loadServiceConfig(env({})).otel, {});
  for (
    const [name, raw] of [
      ["OTEL_DENO", "yes"],
      ["OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://otel.invalid"],
      ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"],
      ["OTEL_EXPORTER_OTLP_HEADERS", "authorization=secret\n"],
    ]
  ) {
    assert.throws(
      () => loadServiceConfig(env({ [name]: raw })),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message.startsWith(`Invalid ${name}:`) &&
        !err.message.includes(raw),
    );
  }
});
