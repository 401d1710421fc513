// nginx's client and key against the service's rules: the key patterns in
// JavaScript over every shape of IPv6 address, and the rendered config in
// a real nginx against resolveClient over thousands of generated headers.
import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  formatAddress,
  parseAddress,
  parseRange,
  resolveClient,
  splitForwardedFor,
} from "../service/client_ip.ts";
import { KEY_PATTERNS } from "./client_key.ts";
import { renderNginxConfig } from "./nginx_config.ts";
import { runtimeLayout } from "./runtime_dir.ts";
import { loadStackConfig } from "./stack_config.ts";
import { needs, onFreePort, PortTaken, run } from "../tests/test_util.ts";

/** The key the limits use for an address as the answer writes it. */
function expectedKey(address: string): string {
  const parsed = parseAddress(address)!;
  if (parsed.kind() === "ipv4") return address;
  return (parsed as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16))
    .join(":");
}

// What nginx's `map` does: the first pattern that matches, its captures.
function mappedKey(address: string): string {
  for (const [pattern, key] of KEY_PATTERNS) {
    const m = new RegExp(pattern).exec(address);
    if (m) return key.replace(/\$(\d)/g, (_, i) => m[Number(i)]);
  }
  return address;
}

Deno.test("nginx's key of an IPv6 address is its /64, wherever its :: stands", () => {
  // Every pattern of zero groups, each nonzero group short or long.
  for (let zeros = 0; zeros < 256; zeros++) {
    for (const width of [1, 4]) {
      const parts = Array.from(
        { length: 8 },
        (_, i) => zeros & (1 << i) ? 0 : (i + 1) * (width === 1 ? 1 : 0x1111),
      );
      const address = formatAddress(new ipaddr.IPv6(parts));
      if (!address.includes(":")) continue;
      assert.equal(mappedKey(address), expectedKey(address), address);
    }
  }
  assert.equal(mappedKey("198.51.100.9"), "198.51.100.9");
});

const TRUSTED = "127.0.0.1,10.0.0.0/8,192.0.2.0/24,2001:db8:1::/48";
const RANGES = TRUSTED.split(",").map(parseRange);

/** nginx with the stack's rendered config, answering its client and key. */
async function withKeyingNginx(
  body: (url: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "client-key-test-" });
  const layout = runtimeLayout(dir);
  for (const d of [layout.nginx, layout.public, layout.sockets]) {
    await Deno.mkdir(d, { recursive: true });
  }
  try {
    await onFreePort(async (port) => {
      const env: Record<string, string> = {
        PORT: String(port),
        RUNTIME_DIR: dir,
        TRUSTED_PROXIES: TRUSTED,
        RATE_LIMIT: "0",
      };
      const config = loadStackConfig((name) => env[name]);
      await Deno.writeTextFile(
        layout.nginxConf,
        renderNginxConfig(config, false).replaceAll(
          "proxy_pass http://workers;",
          'return 200 "$client_addr $client_key";',
        ),
      );
      const nginx = run("nginx", ["-c", layout.nginxConf, "-e", "stderr"]);
      try {
        const url = `http://127.0.0.1:${port}/`;
        await answering(url, nginx.child.status);
        await body(url);
      } catch (err) {
        if (nginx.stderr.some((l) => /Address already in use/.test(l))) {
          throw new PortTaken(String(err));
        }
        throw err;
      } finally {
        try {
          nginx.child.kill("SIGQUIT");
        } catch {
          // Gone.
        }
        await nginx.child.status;
        await nginx.drained;
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Resolves once `url` answers; rejects if nginx exits first.
async function answering(url: string, exited: Promise<unknown>) {
  let gone = false;
  exited.then(() => (gone = true));
  while (!gone) {
    try {
      await (await fetch(url)).body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error("nginx exited");
}

const octet = fc.integer({ min: 0, max: 255 });
const v4 = fc.oneof(
  fc.tuple(octet, octet, octet, octet).map((o) => o.join(".")),
  fc.tuple(octet, octet).map(([a, b]) => `10.0.${a}.${b}`),
  octet.map((a) => `192.0.2.${a}`),
  fc.constantFrom("0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255"),
);
const group = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 1, max: 0xf }),
);
const v6 = fc.oneof(
  fc.array(group, { minLength: 8, maxLength: 8 }),
  fc.array(group, { minLength: 5, maxLength: 5 }).map((
    p,
  ) => [0x2001, 0xdb8, 1, ...p]),
  fc.array(group, { minLength: 2, maxLength: 2 }).map((
    p,
  ) => [0, 0, 0, 0, 0, 0xffff, ...p]),
  fc.array(group, { minLength: 2, maxLength: 2 }).map((
    p,
  ) => [0, 0, 0, 0, 0, 0, ...p]),
).map((parts) => new ipaddr.IPv6(parts));
const hex = (p: number) => p.toString(16);
const dotted = (a: ipaddr.IPv6) =>
  a.parts.slice(6).flatMap((p) => [p >> 8, p & 255]).join(".");
// The one spelling, and others of the same address.
const v6Text = fc.tuple(v6, fc.nat(7)).map(([a, how]) =>
  [
    formatAddress(a),
    formatAddress(a).toUpperCase(),
    a.parts.map(hex).join(":"),
    a.parts.map((p) => hex(p).padStart(4, "0")).join(":"),
    a.toRFC5952String(),
    `${a.parts.slice(0, 6).map(hex).join(":")}:${dotted(a)}`,
    `::${a.parts.slice(5, 6).map(hex)}:${dotted(a)}`,
    `::${dotted(a)}`,
  ][how]
);
const port = fc.oneof(
  fc.integer({ min: 0, max: 65535 }).map(String),
  fc.constantFrom("65536", "", "08"),
);
const junk = fc.constantFrom(
  "",
  "unknown",
  "0177.0.0.1",
  "010.0.0.1",
  "fe80::1%eth0",
  "[10.0.0.1]",
  "[2001:db8::1",
  "1.2.3.4 5.6.7.8",
);
const hop = fc.tuple(
  fc.constantFrom("", " ", "\t"),
  fc.oneof(
    v4,
    v6Text,
    junk,
    fc.tuple(v4, port).map(([a, p]) => `${a}:${p}`),
    v6Text.map((a) => `[${a}]`),
    fc.tuple(v6Text, port).map(([a, p]) => `[${a}]:${p}`),
  ),
  fc.constantFrom("", " ", "\t"),
).map((parts) => parts.join(""));

Deno.test({
  name:
    "nginx's client and key are the service's, in a real nginx, for thousands of headers",
  ignore: !needs("nginx"),
  fn: () =>
    withKeyingNginx(async (url) => {
      const peer = parseAddress("127.0.0.1")!;
      const failures: string[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.array(hop, { minLength: 1, maxLength: 6 }),
          async (hops) => {
            // fetch trims the value's ends, as any client may.
            const header = hops.join(",").replace(/^[ \t]+|[ \t]+$/g, "");
            const res = await fetch(url, {
              headers: { "x-forwarded-for": header },
            });
            const client = formatAddress(
              resolveClient(peer, splitForwardedFor(header), RANGES),
            );
            const expected = `${client} ${expectedKey(client)}`;
            const got = await res.text();
            if (got !== expected) {
              failures.push(`${JSON.stringify(header)}: ${got} != ${expected}`);
            }
          },
        ),
        { numRuns: 4000 },
      );
      assert.deepEqual(failures.slice(0, 10), []);
    }),
});
