// The caller's country from the embedded database: a table of addresses
// inside ranges the database's own CSV edition publishes (the same release,
// @ip-location-db/geo-whois-asn-country@2.3.2026061719), in-process and
// through the stack with TRUSTED_PROXIES.
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { embeddedCountry } from "./geo_db.ts";
import { createLogger } from "./log.ts";
import { parseRange } from "./client_ip.ts";
import { withStack } from "../tests/test_util.ts";

// [address, country, the published range it falls in]
const PUBLIC: [string, string, string][] = [
  ["81.2.69.1", "GB", "81.2.64.0,81.2.127.255,GB"],
  ["2.27.22.10", "DE", "2.27.22.0,2.27.22.255,DE"],
  ["8.36.217.1", "BR", "8.36.217.0,8.36.217.255,BR"],
  ["15.240.1.1", "ZA", "15.240.0.0,15.240.255.255,ZA"],
  ["1.1.1.1", "AU", "1.1.1.0,1.1.1.255,AU"],
  [
    "2001:668:1f:fc04::1",
    "DE",
    "2001:668:1f:fc03::,2001:668:1f:fc06:ffff:ffff:ffff:ffff,DE",
  ],
  [
    "2001:1290::1",
    "BR",
    "2001:1290::,2001:1291:ffff:ffff:ffff:ffff:ffff:ffff,BR",
  ],
  [
    "2001:240:1f1:15::1",
    "JP",
    "2001:240:1f1:14::,2001:240:1f1:17:ffff:ffff:ffff:ffff,JP",
  ],
  [
    "2001:df3:ebc0:80::1",
    "NZ",
    "2001:df3:ebc0:77::,2001:df3:ebc0:bf:ffff:ffff:ffff:ffff,NZ",
  ],
  [
    "2001:1be0:1658:1::1",
    "ZA",
    "2001:1be0:1658::,2001:1be0:1658:3:ffff:ffff:ffff:ffff,ZA",
  ],
];

// Private, loopback, link-local, CGNAT, documentation, and public space in
// a gap between the published ranges.
const NONE = [
  "10.1.2.3",
  "192.168.1.1",
  "172.16.0.1",
  "127.0.0.1",
  "::1",
  "fe80::1",
  "fd00::1",
  "100.64.0.1",
  "203.0.113.7",
  "2001:db8::1",
  "5.249.170.1",
  "2001:402::1",
];

Deno.test("the embedded database names the country of published ranges, both families", () => {
  for (const [address, country] of PUBLIC) {
    assert.equal(embeddedCountry(address), country, address);
  }
});

Deno.test("private, loopback, reserved and unlisted addresses have no country", () => {
  for (const address of NONE) {
    assert.equal(embeddedCountry(address), undefined, address);
  }
});

function appTrusting(proxy: string) {
  return createApp({
    trustedProxies: [parseRange(proxy)],
    forwardedHeader: "x-forwarded-for",
    logger: createLogger("error"),
    version: "test",
  });
}

const PROXY = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
  completed: Promise.resolve(),
} as Deno.ServeHandlerInfo;

Deno.test("/ip's JSON has the country when known and no country key otherwise", async () => {
  const app = appTrusting("127.0.0.1");
  const ask = async (client: string) => {
    const res = await app.request("/ip?format=json", {
      headers: { "x-forwarded-for": client },
    }, PROXY);
    return await res.json();
  };
  assert.deepEqual(await ask("81.2.69.1"), {
    ip: "81.2.69.1",
    family: "ipv4",
    country: "GB",
  });
  assert.deepEqual(await ask("2001:1290::1"), {
    ip: "2001:1290::1",
    family: "ipv6",
    country: "BR",
  });
  assert.deepEqual(await ask("10.1.2.3"), { ip: "10.1.2.3", family: "ipv4" });
  // `/` stays exactly {timestamp, ip}.
  const root = await app.request("/", {
    headers: { "x-forwarded-for": "81.2.69.1" },
  }, PROXY);
  assert.deepEqual(Object.keys(await root.json()), ["timestamp", "ip"]);
});

Deno.test("the page shows the country when known, nothing otherwise", async () => {
  const app = appTrusting("127.0.0.1");
  const page = async (client: string) =>
    await (await app.request("/", {
      headers: { accept: "text/html", "x-forwarded-for": client },
    }, PROXY)).text();
  assert.match(await page("2.27.22.10"), /<p id="country">Country: DE<\/p>/);
  assert.doesNotMatch(await page("192.168.1.1"), /id="country"/);
});

Deno.test("through the stack, a trusted proxy's client gets its country", async () => {
  await withStack({ TRUSTED_PROXIES: "127.0.0.1" }, async (stack) => {
    for (
      const [client, country] of [...PUBLIC.map(([a, c]) => [a, c]), [
        "127.0.0.1",
        undefined,
      ], ["192.168.1.1", undefined]]
    ) {
      const res = await fetch(`${stack.url}/ip?format=json`, {
        headers: { "x-forwarded-for": client! },
      });
      const body = await res.json();
      assert.equal(body.ip, client);
      assert.equal(body.country, country, client);
    }
    const direct = await (await fetch(`${stack.url}/api/ip`)).json();
    assert.equal(direct.client_ip, "127.0.0.1");
    assert.equal(direct.timezone, "Etc/UTC");
    assert.equal(direct.timezone_basis, "guess");
  });
});

Deno.test("the hand-split prefix check agrees with ipaddr.js on random addresses of both families", async () => {
  const fc = (await import("fast-check")).default;
  const { formatAddress, isTrusted, parseAddress, parseRange } = await import(
    "./client_ip.ts"
  );
  const { isSpecial, NO_COUNTRY, unitsOf } = await import("./geo.ts");
  const ranges = NO_COUNTRY.map(parseRange);
  // Biased towards the special ranges' neighbourhoods.
  const v4 = fc.tuple(
    fc.constantFrom(
      0,
      10,
      100,
      127,
      169,
      172,
      192,
      198,
      203,
      223,
      224,
      255,
      fc.sample(fc.integer({ min: 0, max: 255 }), 1)[0],
    ),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
  ).map((o) => o.join("."));
  const v6 = fc.tuple(
    fc.constantFrom(
      0,
      0x100,
      0x2001,
      0xfc00,
      0xfd12,
      0xfe80,
      0xfebf,
      0xfec0,
      0xff02,
      0x2a00,
    ),
    fc.array(fc.integer({ min: 0, max: 0xffff }), {
      minLength: 7,
      maxLength: 7,
    }),
    fc.constantFrom(0, 2, 0xdb8, 0xdb9, 0x1290),
  ).map(([a, rest, b]) =>
    [a, b, ...rest.slice(1)].map((w) => w.toString(16)).join(":")
  );
  fc.assert(
    fc.property(fc.oneof(v4, v6), (text) => {
      const parsed = parseAddress(text);
      if (parsed === undefined) return true;
      const normal = formatAddress(parsed);
      if (normal.includes(".") && normal.includes(":")) return true;
      const units = unitsOf(normal);
      assert.ok(units, normal);
      assert.equal(isSpecial(units), isTrusted(parsed, ranges), normal);
    }),
    { numRuns: 5000 },
  );
});
