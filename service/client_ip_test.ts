// Client address resolution: table tests for every form, and properties
// that random header soup never yields a forged address and never throws.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  formatAddress,
  formatRange,
  normalizeAddress,
  parseAddress,
  parseForwardedNode,
  parseHop,
  parseRange,
  resolveClient,
  splitForwardedFor,
} from "./client_ip.ts";
import { splitForwarded } from "./forwarded.ts";
import {
  FORWARDING_CASES,
  TABLE_PEER,
  TABLE_TRUSTED,
} from "../tests/forwarding_cases.ts";

Deno.test("normalizeAddress accepts IP literals only, in canonical form", () => {
  const cases: [string, string | undefined][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["203.0.113.7", "203.0.113.7"],
    ["::1", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::ffff:0102:0304", "1.2.3.4"],
    // IPv4-compatible (RFC 4291 §2.5.5.1), not IPv4-mapped.
    ["::8.8.8.8", "::808:808"],
    ["::0.0.0.1", "::1"],
    ["0:0:0:0:0:0:8.8.8.8", "::808:808"],
    // RFC 5952: of two equal runs of zeros the first is `::`.
    ["0:0:1:0:0:1:1:1", "::1:0:0:1:1:1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    // A zone id is refused, not dropped: "1.2.3.4%<script>" is no address.
    ["fe80::1%eth0", undefined],
    ["1.2.3.4%<script>", undefined],
    ["::1%lo", undefined],
    ["::ffff:001.2.3.4", undefined],
    // No client has these.
    ["::", undefined],
    ["0.0.0.0", undefined],
    ["0.255.0.1", undefined],
    ["255.255.255.255", undefined],
    ["239.1.2.3", undefined],
    ["ff02::1", undefined],
    // Not IP literals, or not in the one accepted spelling.
    ["", undefined],
    ["localhost", undefined],
    ["1.2.3", undefined],
    ["1.2.3.4.5", undefined],
    ["256.1.1.1", undefined],
    ["01.2.3.4", undefined],
    ["0x7f.0.0.1", undefined],
    ["2130706433", undefined],
    ["1.2.3.4:80", undefined],
    ["[::1]", undefined],
    [" 1.2.3.4", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["unknown", undefined],
  ];
  for (const [input, expected] of cases) {
    assert.equal(normalizeAddress(input), expected, JSON.stringify(input));
  }
});

Deno.test("parseHop takes the answer's spelling, ports and [IPv6]; refuses other spellings, quotes, zones and [IPv4]", () => {
  const cases: [string, string | undefined][] = [
    ["1.2.3.4", "1.2.3.4"],
    [" 1.2.3.4 ", "1.2.3.4"],
    ["1.2.3.4:8080", "1.2.3.4"],
    ["[2001:db8::1]", "2001:db8::1"],
    ["[2001:db8::1]:443", "2001:db8::1"],
    ["\t1.2.3.4", "1.2.3.4"],
    ["2001:db8::1", "2001:db8::1"],
    ["[::ffff:10.0.0.1]:80", "10.0.0.1"],
    ["::ffff:10.0.0.1", "10.0.0.1"],
    // Any spelling but the answer's is not a hop (hop_grammar.ts).
    ["2001:DB8::1", undefined],
    ["[2001:0db8::1]", undefined],
    ["2001:db8:0:0:0:0:0:1", undefined],
    ["::ffff:a00:1", undefined],
    ["::10.0.0.1", undefined],
    ["010.0.0.1", undefined],
    ['"[2001:db8:cafe::17]:4711"', undefined],
    ['"192.0.2.43:47011"', undefined],
    ["[fe80::1%25eth0]:80", undefined],
    ["[1.2.3.4]", undefined],
    ["1.2.3.4:65536", undefined],
    ["1.2.3.4 5.6.7.8", undefined],
    ["[::]:80", undefined],
    ["1.2.3.4:", undefined],
    ["1.2.3.4:http", undefined],
    ["[2001:db8::1]x", undefined],
    ["[2001:db8::1", undefined],
    ["unknown", undefined],
    ["_hidden", undefined],
    ['"', undefined],
  ];
  for (const [input, expected] of cases) {
    const hop = parseHop(input);
    assert.equal(hop && formatAddress(hop), expected, JSON.stringify(input));
  }
});

Deno.test("parseForwardedNode reads RFC 7239 nodes only", () => {
  const cases: [string, string | undefined][] = [
    ["192.0.2.43", "192.0.2.43"],
    ["192.0.2.43:47011", "192.0.2.43"],
    ["192.0.2.43:_port", "192.0.2.43"],
    ["[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"],
    ["[2001:db8:cafe::17]", "2001:db8:cafe::17"],
    ["2001:db8:cafe::17", undefined],
    ["[1.2.3.4]", undefined],
    ["[2001:DB8:cafe::17]", undefined],
    ["[::ffff:192.0.2.43]:_x", "192.0.2.43"],
    ["unknown", undefined],
    ["_hidden", undefined],
    ["1.2.3.4:99999", undefined],
    ["0.0.0.0", undefined],
    ["[::]", undefined],
    ["", undefined],
  ];
  for (const [input, expected] of cases) {
    const node = parseForwardedNode(input);
    assert.equal(node && formatAddress(node), expected, JSON.stringify(input));
  }
});

Deno.test("the forwarding table: one answer for every X-Forwarded-For case", () => {
  const ranges = TABLE_TRUSTED.split(",").map(parseRange);
  for (const [lines, expected] of FORWARDING_CASES) {
    const hops = splitForwardedFor(lines.join(", "));
    const client = resolveClient(peer(TABLE_PEER), hops, ranges);
    assert.equal(formatAddress(client), expected, JSON.stringify(lines));
  }
});

const trusted = ["10.0.0.0/8", "::1", "fd00::/8"].map(parseRange);
const peer = (text: string) => parseAddress(text)!;
const resolve = (p: string, xff: string) =>
  formatAddress(resolveClient(peer(p), splitForwardedFor(xff), trusted));

Deno.test("resolveClient walks X-Forwarded-For from the right", () => {
  // Untrusted peer: headers are never read.
  assert.equal(resolve("198.51.100.1", "1.1.1.1"), "198.51.100.1");
  // Trusted peer: the first untrusted hop from the right is the client.
  assert.equal(resolve("10.0.0.1", "1.1.1.1"), "1.1.1.1");
  assert.equal(resolve("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.2"), "1.1.1.1");
  assert.equal(resolve("::1", "[2001:db8::5]:1234, fd00::1"), "2001:db8::5");
  // Forged entries left of the real client are ignored.
  assert.equal(resolve("10.0.0.1", "127.0.0.1, 9.9.9.9"), "9.9.9.9");
  // Junk stops the walk at the nearest trusted hop.
  assert.equal(resolve("10.0.0.1", "1.1.1.1, garbage"), "10.0.0.1");
  assert.equal(resolve("10.0.0.1", "1.1.1.1, junk, 10.0.0.3"), "10.0.0.3");
  assert.equal(resolve("10.0.0.1", ""), "10.0.0.1");
  // All hops trusted: the leftmost is as far as the chain is vouched for.
  assert.equal(resolve("10.0.0.1", "10.0.0.9, 10.0.0.8"), "10.0.0.9");
  // IPv4-mapped peers match IPv4 ranges.
  assert.equal(resolve("::ffff:10.0.0.1", "1.1.1.1"), "1.1.1.1");
});

Deno.test("parseRange accepts addresses and CIDRs, rejects the rest", () => {
  // Each range as [canonical base address, prefix length]: a lone address
  // is a full-length prefix, and an IPv4-mapped range is its IPv4 range.
  for (
    const [text, base, bits] of [
      ["10.0.0.0/8", "10.0.0.0", 8],
      ["1.2.3.4", "1.2.3.4", 32],
      ["::1", "::1", 128],
      ["fd00::/8", "fd00::", 8],
      ["::ffff:10.0.0.0/104", "10.0.0.0", 8],
      ["::ffff:1.2.3.4", "1.2.3.4", 32],
      ["2001:DB8::/32", "2001:db8::", 32],
    ] as const
  ) {
    const [address, prefix] = parseRange(text);
    assert.deepEqual([address.toString(), prefix], [base, bits], text);
  }
  for (
    const bad of [
      "10.0.0.0/33",
      "10.0.0.0/",
      "/8",
      "nope",
      "10.0.0.0/8/8",
      "::/129",
      "1.2.3.4/08x",
      "fe80::1%eth0",
      "fe80::1%eth0/64",
      "fe80::1%eth0;set_real_ip_from 127.0.0.1",
      "10.0.0.0/8;",
      "10.0.0.0/8 1.2.3.4",
      "0x7f.0.0.1/8",
      "::ffff:10.0.0.0/95",
    ]
  ) {
    assert.throws(() => parseRange(bad), Error, bad);
  }
  // One spelling, the network's: what nginx and the logs see.
  for (
    const [given, normal] of [
      ["10.1.2.3/8", "10.0.0.0/8"],
      ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
      ["2001:DB8::1", "2001:db8::1/128"],
      ["fd00::5/8", "fd00::/8"],
    ]
  ) {
    assert.equal(formatRange(parseRange(given)), normal, given);
  }
});

// Random headers: pieces of real addresses, ports, brackets, quotes, junk.
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const hop = fc.oneof(
  ipv4,
  ipv6,
  fc.tuple(ipv4, fc.integer({ min: 0, max: 65535 })).map(([a, p]) =>
    `${a}:${p}`
  ),
  ipv6.map((a) => `[${a}]`),
  ipv6.map((a) => `"[${a}]:80"`),
  fc.constantFrom(
    "unknown",
    "_hidden",
    "",
    " ",
    "[",
    "]",
    '"',
    "::ffff:10.0.0.1",
    "10.0.0.7",
  ),
  fc.string(),
);
const header = fc.array(hop, { maxLength: 8 }).map((hops) => hops.join(","));
const anyPeer = fc.oneof(
  ipv4,
  ipv6,
  fc.constantFrom("10.0.0.1", "::1", "fd00::2"),
);

function candidates(
  peerText: string,
  hops: string[],
  parse = parseHop,
): Set<string> {
  const set = new Set([formatAddress(peer(peerText))]);
  for (const h of hops) {
    const a = parse(h);
    if (a) set.add(formatAddress(a));
  }
  return set;
}

Deno.test("property: the client is the peer or a hop of the header", () => {
  fc.assert(
    fc.property(anyPeer, header, (p, xff) => {
      const hops = splitForwardedFor(xff);
      const client = formatAddress(resolveClient(peer(p), hops, trusted));
      assert.ok(candidates(p, hops).has(client));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: an untrusted peer is always the answer", () => {
  fc.assert(
    fc.property(ipv4.filter((a) => !a.startsWith("10.")), header, (p, xff) => {
      const client = resolveClient(peer(p), splitForwardedFor(xff), trusted);
      assert.equal(formatAddress(client), formatAddress(peer(p)));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: Forwarded soup never throws and never invents", () => {
  const forwarded = fc.array(
    fc.tuple(hop, fc.constantFrom("", ";proto=https", ";by=10.0.0.1", "by=x;")),
    { maxLength: 6 },
  ).map((els) => els.map(([h, extra]) => `for=${h}${extra}`).join(", "));
  fc.assert(
    fc.property(anyPeer, fc.oneof(forwarded, fc.string()), (p, value) => {
      const hops = splitForwarded(value);
      const client = formatAddress(
        resolveClient(peer(p), hops, trusted, parseForwardedNode),
      );
      assert.ok(candidates(p, hops, parseForwardedNode).has(client));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: normalization is idempotent and round-trips", () => {
  fc.assert(
    fc.property(fc.oneof(ipv4, ipv6), (text) => {
      const once = normalizeAddress(text);
      if (once === undefined) {
        // fast-check may spell IPv4 with leading zeros, or pick an address
        // no client has; those are refused.
        const address = parseAddress(text);
        assert.ok(
          /(^|[.:])0\d/.test(text) ||
            ["unspecified", "multicast", "broadcast"].includes(
              address!.range(),
            ),
          text,
        );
        return;
      }
      assert.equal(normalizeAddress(once), once);
      assert.equal(once, once.toLowerCase());
    }),
    { numRuns: 2000 },
  );
});
