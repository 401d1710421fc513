// The patterns nginx walks and keys by, run here in JavaScript (the same
// regular expressions) against the service's own rules (client_ip.ts).
import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  formatAddress,
  isPossibleClient,
  parseAddress,
  parseHop,
} from "../service/client_ip.ts";
import { hopPattern, keyMap, prefixPatterns } from "./client_key.ts";

// What nginx's `map` does with the first pattern that matches.
function mapped(value: string, patterns: [RegExp, string][]): string {
  for (const [pattern, replacement] of patterns) {
    const m = pattern.exec(value);
    if (!m) continue;
    return replacement
      .replace(/\$(\d)/g, (_, i) => m[Number(i)] ?? "")
      .replace(
        /\$([a-z_0-9]+?)_lc/g,
        (_, name) => (m.groups?.[name] ?? "").toLowerCase(),
      );
  }
  return "";
}

const PREFIX: [RegExp, string][] = prefixPatterns().map((
  p,
) => [new RegExp(p.pattern), p.replacement]);

// The lowercasing map of keyMap, read back from its rendered lines.
const LOWER: [RegExp, string][] = (() => {
  const lines = keyMap("$client_addr", "$client_key");
  const line = lines.find((l) => l.includes("(?<client_key_a1>"))!;
  const [, pattern, value] = /^ {2}"~(.*)" "(.*)";$/.exec(line)!;
  return [[new RegExp(pattern), value]];
})();

const group = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 0, max: 0xf }),
);
const address = fc.array(group, { minLength: 8, maxLength: 8 }).map((parts) =>
  new ipaddr.IPv6(parts)
);

Deno.test("nginx's key of an IPv6 address is its /64, however it is spelled", () => {
  fc.assert(
    fc.property(address, fc.boolean(), (v6, upper) => {
      const expected = v6.parts.slice(0, 4).map((p) => p.toString(16))
        .join(":");
      for (
        let text of [
          v6.toRFC5952String(),
          v6.toNormalizedString(),
          v6.parts.map((p) => p.toString(16).padStart(4, "0")).join(":"),
        ]
      ) {
        if (upper) text = text.toUpperCase();
        const prefix = mapped(text, PREFIX);
        assert.equal(mapped(prefix, LOWER), expected, text);
      }
    }),
    { numRuns: 2000 },
  );
});

const octet = fc.integer({ min: 0, max: 255 }).map(String);
const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
const v6 = address.map((a) => a.toRFC5952String());
const junk = fc.constantFrom(
  "",
  " ",
  "\t",
  "0177.0.0.1",
  "006.6.6.6",
  "0x7f.1",
  "2130706433",
  "fe80::1%eth0",
  "[6.6.6.6]",
  "[2001:db8::1",
  "unknown",
  "1::2::3",
  "1:2:3:4:5:6:7:8:9",
  "::ffff:006.6.6.6",
  "::ffff:1.2.3.4",
  "::FFFF:198.51.100.9",
);
const port = fc.oneof(
  fc.integer({ min: 0, max: 65535 }).map(String),
  fc.constantFrom("65536", "99999", "", "08"),
);
const hop = fc.tuple(
  fc.constantFrom("", " ", "\t", " \t"),
  fc.oneof(
    v4,
    v6,
    junk,
    fc.tuple(v4, port).map(([a, p]) => `${a}:${p}`),
    fc.tuple(v6, port).map(([a, p]) => `[${a}]:${p}`),
    v6.map((a) => `[${a}]`),
    v6.map((a) => a.toUpperCase()),
  ),
  fc.constantFrom("", " ", "\t"),
).map(([a, b, c]) => a + b + c);

Deno.test("nginx reads an X-Forwarded-For hop as the service does", () => {
  const patterns = [1, 2, 3].map((k) => new RegExp(hopPattern(k)));
  fc.assert(
    fc.property(fc.array(hop, { minLength: 1, maxLength: 4 }), (hops) => {
      const header = hops.join(",");
      for (let k = 1; k <= 3; k++) {
        const m = patterns[k - 1].exec(header);
        const text = m ? (m[1] ?? m[2] ?? m[3]) : undefined;
        const raw = hops[hops.length - k];
        const rules = raw === undefined ? undefined : parseHop(raw);
        const read = text === undefined ? undefined : parseAddress(text);
        if (rules) {
          assert.ok(read, `${JSON.stringify(raw)} is read`);
          assert.equal(formatAddress(read), formatAddress(rules));
        } else if (read) {
          // Read by the pattern, then no client by geo (client_key.ts).
          assert.ok(!isPossibleClient(read), JSON.stringify(raw));
        }
      }
    }),
    { numRuns: 3000 },
  );
});
