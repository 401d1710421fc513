// nginx.conf as rendered: static locations and errors from their sources,
// and config injection: whatever the environment holds, only the
// validated, normalised form of a setting reaches nginx.conf.
import assert from "node:assert/strict";
import template from "../nginx/nginx.conf" with { type: "text" };
import { ALLOW, COMMON_HEADERS } from "../service/common_headers.ts";
import { ConfigError } from "../service/config.ts";
import { loadStackConfig, type StackConfig } from "./stack_config.ts";
import { STATIC_FILES } from "../service/static_files.ts";
import { ACCEPT_LIMIT, HOST_PATTERN } from "../service/request_rules.ts";
import {
  connectionLimit,
  NGINX_ERRORS,
  REFUSED_STATUSES,
  renderNginxConfig,
} from "./nginx_config.ts";
import { runtimeLayout } from "./runtime_dir.ts";

const config = loadStackConfig(
  (name) => ({ RUNTIME_DIR: "/run/ipt", PORT: "8080" })[name],
  { cpus: 2 },
);
const rendered = renderNginxConfig(config, false);

// The lines of the block that starts with `opening`.
function block(text: string, opening: string): string[] {
  const start = text.indexOf(opening + " {");
  assert.ok(start >= 0, `no ${opening}`);
  const end = text.indexOf("\n    }", start);
  return text.slice(start, end).split("\n").slice(1).map((l) => l.trim());
}

Deno.test("each static file has its own location, from static_files.ts", () => {
  for (const [path, file] of STATIC_FILES) {
    const lines = block(rendered, `location = ${path}`);
    assert.ok(lines.includes(`root ${runtimeLayout("/run/ipt").public};`));
    assert.ok(lines.includes(`default_type "${file.type}";`), path);
    const headers = { ...COMMON_HEADERS, "cache-control": file.cacheControl };
    for (const [name, value] of Object.entries(headers)) {
      const sets = lines.filter((l) => l.startsWith(`add_header ${name} `));
      assert.deepEqual(sets, [`add_header ${name} "${value}" always;`], name);
    }
    assert.ok(lines.includes('add_header x-request-id "$req_id" always;'));
  }
});

Deno.test("nginx's config spells no fact that has a source elsewhere", () => {
  for (const fact of [ALLOW, "max-age", "favicon", "robots", "/static/"]) {
    assert.ok(!template.includes(fact), fact);
  }
  for (const name of Object.keys(COMMON_HEADERS)) {
    assert.ok(!template.toLowerCase().includes(name), name);
  }
});

Deno.test("each error nginx raises is JSON with each common header once; a refusal counts against the rate limit first", () => {
  for (const [raised, [status, message]] of Object.entries(NGINX_ERRORS)) {
    assert.ok(
      rendered.includes(`error_page ${raised} =${status} /_errors/${status};`),
      raised,
    );
    let lines = block(rendered, `location = /_errors/${status}`);
    // limit_req counts before the named location's `return` answers.
    const limited = REFUSED_STATUSES.includes(status) && status !== 429;
    const limits = lines.filter((l) => l.startsWith("limit_req "));
    assert.deepEqual(
      limits,
      limited ? ["limit_req zone=per_client burst=100 nodelay;"] : [],
    );
    if (limited) {
      assert.ok(lines.includes(`try_files "" @error_${status};`), raised);
      lines = block(rendered, `location @error_${status}`);
    }
    assert.ok(lines.includes("default_type application/json;"), raised);
    for (const [name, value] of Object.entries(COMMON_HEADERS)) {
      const sets = lines.filter((l) => l.startsWith(`add_header ${name} `));
      assert.deepEqual(sets, [`add_header ${name} "${value}" always;`], name);
    }
    const body = JSON.stringify({ error: message });
    assert.ok(lines.includes(`return ${status} '${body}\\n';`), raised);
  }
});

// Every real process has a HOME, where the default RUNTIME_DIR goes.
const env = (vars: Record<string, string>) => (name: string) =>
  ({ HOME: "/home/ann", ...vars })[name];

// Text that would end a directive and start another if it got through.
const HOSTILE = [
  ";set_real_ip_from 0.0.0.0/0",
  "1;}server{listen 1;",
  "1 2",
  "1\nuser root;",
  '1"',
  "1'",
  "${x}",
  "1#",
];

Deno.test("hostile values for every rendered setting stop at validation", () => {
  const settings = [
    "PORT",
    "WORKERS",
    "NGINX_WORKERS",
    "RUNTIME_DIR",
    "RATE_LIMIT",
    "TRUSTED_PROXIES",
  ];
  for (const name of settings) {
    for (const tail of HOSTILE) {
      for (
        const value of [
          tail,
          `8${tail}`,
          `/tmp/x${tail}`,
          `10.0.0.1${tail}`,
          `fe80::1%eth0${tail}`,
          `10.0.0.0/8,${tail}`,
        ]
      ) {
        assert.throws(
          () => loadStackConfig(env({ [name]: value })),
          ConfigError,
          `${name}=${JSON.stringify(value)}`,
        );
      }
    }
  }
  // The case that got through: a zone id stripped for validation only.
  assert.throws(
    () =>
      loadStackConfig(
        env({ TRUSTED_PROXIES: "fe80::1%eth0;set_real_ip_from 127.0.0.1" }),
      ),
    ConfigError,
  );
});

Deno.test("what reaches nginx.conf is the normal form of each setting", () => {
  const config = loadStackConfig(
    env({
      TRUSTED_PROXIES: " 10.1.2.3/8 , ::FFFF:192.0.2.0/120, 2001:DB8::1 ",
      RUNTIME_DIR: "/run//ip-timestamp/./x/",
      PORT: "08080",
    }),
    { cpus: 2 },
  );
  const text = renderNginxConfig(config, true);
  // The proxies whose hops are believed (stack/client_key.ts).
  const peer = text.slice(text.indexOf("geo $remote_addr $peer_class {"));
  assert.deepEqual(
    peer.slice(0, peer.indexOf("}")).split("\n").slice(2, -1)
      .map((l) => l.trim()),
    [
      "10.0.0.0/8 1;",
      "192.0.2.0/24 1;",
      "2001:db8::1/128 1;",
    ],
  );
  assert.match(text, /^pid \/run\/ip-timestamp\/x\/nginx\/nginx\.pid;$/m);
  assert.match(text, /^ {4}listen 8080 /m);
  assert.ok(!text.includes("/run//") && !text.includes("/./"));
});

Deno.test("the renderer refuses any field not in normal form, however it came", () => {
  const good = loadStackConfig(env({ TRUSTED_PROXIES: "10.0.0.0/8" }), {
    cpus: 2,
  });
  renderNginxConfig(good, true);
  const bad: [Partial<StackConfig>, string][] = [
    [{ trustedProxies: ["10.0.0.0/8;allow all"] }, "trustedProxies"],
    [{ trustedProxies: ["fe80::1%eth0"] }, "trustedProxies"],
    [{ trustedProxies: ["10.1.2.3/8"] }, "trustedProxies"],
    [{ runtimeDir: "/tmp/x;y" }, "runtimeDir"],
    [{ runtimeDir: "/tmp/x y" }, "runtimeDir"],
    [{ runtimeDir: "/tmp/../etc" }, "runtimeDir"],
    [{ port: 80.5 }, "port"],
    [{ port: 0 }, "port"],
    [{ workers: 65 }, "workers"],
    [{ nginxWorkers: NaN }, "nginxWorkers"],
    [{ rateLimit: -1 }, "rateLimit"],
  ];
  for (const [change, field] of bad) {
    assert.throws(
      () => renderNginxConfig({ ...good, ...change }, true),
      new RegExp(`Refusing to render nginx\\.conf: ${field} `),
      JSON.stringify(change),
    );
  }
});

Deno.test("a refused request is a short log line and no error-log line", () => {
  // The default config limits the rate (RATE_LIMIT 50).
  const lines = rendered.split("\n").map((l) => l.trim());
  // One JSON line per answer but nginx's refusals; the relay counts these
  // (`STATUS CLIENT`, log_relay.ts), one line per client per second.
  assert.ok(lines.includes("log_format refused '$status $client_addr';"));
  assert.deepEqual(lines.filter((l) => l.startsWith("access_log ")), [
    "access_log /dev/stdout json buffer=64k flush=1s if=$answered;",
    "access_log /dev/stdout refused buffer=64k flush=1s if=$refused;",
    // The supervisor's liveness probe, on nginx's own socket.
    "access_log off;",
  ]);
  const map = (opening: string) => {
    const start = lines.indexOf(`${opening} {`);
    assert.ok(start >= 0, opening);
    return lines.slice(start + 1, lines.indexOf("}", start));
  };
  // Only what nginx answered itself: no worker was asked.
  assert.deepEqual(map("map $status $refused"), [
    ...REFUSED_STATUSES.map((status) => `${status} $nginx_answered;`),
    "default 0;",
  ]);
  assert.deepEqual(map("map $upstream_status $nginx_answered"), [
    '"" 1;',
    "default 0;",
  ]);
  assert.deepEqual(map("map $refused $answered"), ["0 1;", "default 0;"]);
  // Bodies are refused by the rules (REFUSE): nginx's size check, which
  // logs an error for each, never fires.
  assert.ok(lines.includes("client_max_body_size 0;"));
  // Below the error log's level, so that refusals never spend its budget.
  const levels = ["debug", "info", "notice", "warn", "error"];
  const errorLog = lines.find((l) => l.startsWith("error_log "))!;
  const floor = levels.indexOf(errorLog.match(/ (\w+);$/)![1]);
  for (const limit of ["limit_req", "limit_conn"]) {
    const line = lines.find((l) => l.startsWith(`${limit}_log_level `));
    assert.ok(line, limit);
    assert.ok(levels.indexOf(line.match(/ (\w+);$/)![1]) < floor, line);
  }
});

Deno.test("a client's body headers never reach a worker, and the rules are request_rules.ts's", () => {
  const server = rendered.slice(rendered.indexOf("server {"));
  assert.match(server, /proxy_set_header Content-Length "";/);
  assert.match(server, /proxy_set_header Transfer-Encoding "";/);
  assert.ok(rendered.includes(`"~${HOST_PATTERN}" 0;`));
  assert.ok(rendered.includes(`"~^.{${ACCEPT_LIMIT + 1}}" long;`));
  // Every location a client's request reaches first refuses the same.
  for (
    const opening of ["location /", "location @api", "location = /robots.txt"]
  ) {
    const lines = block(rendered, opening);
    for (
      const flag of ["$host_refused", "$announces_body", "$accept_too_long"]
    ) {
      assert.ok(lines.includes(`if (${flag}) {`), `${opening} ${flag}`);
    }
  }
});

Deno.test("the connection limit is max(32, RATE_LIMIT), within what nginx takes", () => {
  assert.equal(connectionLimit(1), 32);
  assert.equal(connectionLimit(50), 50);
  assert.equal(connectionLimit(1_000_000), 65535);
});
