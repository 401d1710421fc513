// The one spelling: the patterns accept an address exactly when it is
// written as the answer writes it, over every shape an IPv6 address has.
import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { HOP, IPV4, IPV6 } from "./hop_grammar.ts";
import { formatAddress, parseAddress } from "./client_ip.ts";

const v6 = new RegExp(`^(?:${IPV6})$`);
const mapped = new RegExp(`^::ffff:(${IPV4})$`);

// Written as the answer writes it (formatAddress), by any parse of it.
function isTheSpelling(text: string): boolean {
  const address = parseAddress(text);
  if (!address) return false;
  const written = formatAddress(address);
  return text === written ||
    (address.kind() === "ipv4" && text === `::ffff:${written}`);
}

/**
 * Every spelling of an address with these zero groups: written out or with
 * `::` for any run of them, groups in lower or upper case, with or without
 * leading zeros (`pick` chooses), the last two groups hex or dotted.
 */
function spellings(zeros: number, pick: () => number): string[] {
  const parts = Array.from(
    { length: 8 },
    (_, i) => zeros & (1 << i) ? 0 : [1, 0xa, 0x1f0, 0xffff][pick() % 4],
  );
  // Mostly as the answer writes it, so that whole spellings often are.
  const group = (p: number) =>
    [p.toString(16).toUpperCase(), p.toString(16).padStart(4, "0")][
      pick() % 8
    ] ?? p.toString(16);
  const tail = `${parts[6] >> 8}.${parts[6] & 255}.${parts[7] >> 8}.${
    parts[7] & 255
  }`;
  const texts: string[] = [];
  for (const dotted of [false, true]) {
    const g = parts.map(group);
    if (dotted) g.splice(6, 2, tail);
    texts.push(g.join(":"));
    for (let i = 0; i < g.length; i++) {
      for (let j = i + 1; j <= g.length && parts[j - 1] === 0; j++) {
        if (parts[i] !== 0) break;
        texts.push(`${g.slice(0, i).join(":")}::${g.slice(j).join(":")}`);
      }
    }
  }
  return texts;
}

Deno.test("IPV6 and ::ffff:IPV4 take an address in its one spelling, and no other", () => {
  let seen = 0, accepted = 0;
  fc.assert(
    fc.property(fc.infiniteStream(fc.nat()), (stream) => {
      const pick = () => stream.next().value;
      for (let zeros = 0; zeros < 256; zeros++) {
        for (const text of spellings(zeros, pick)) {
          const ok = v6.test(text) || mapped.test(text);
          assert.equal(ok, isTheSpelling(text), text);
          seen++;
          if (ok) accepted++;
        }
      }
    }),
    { numRuns: 12 },
  );
  // Every shape's own spelling, mapped or not, was among them.
  assert.ok(seen > 40_000 && accepted > 1_000, `${accepted} of ${seen}`);
});

Deno.test("each address's one spelling is taken: every shape, mapped ones dotted", () => {
  for (let zeros = 0; zeros < 256; zeros++) {
    const parts = Array.from(
      { length: 8 },
      (_, i) => zeros & (1 << i) ? 0 : 0x100 + i,
    );
    const address = new ipaddr.IPv6(parts);
    const text = address.isIPv4MappedAddress()
      ? `::ffff:${address.toIPv4Address()}`
      : formatAddress(address);
    assert.ok(v6.test(text) || mapped.test(text), text);
  }
});

Deno.test("a hop is spaces, the address in brackets or bare, a port after ] or IPv4", () => {
  const hop = new RegExp(`^${HOP}$`);
  const cases: [string, string | undefined][] = [
    [" 1.2.3.4\t", "1.2.3.4"],
    ["1.2.3.4:80", "1.2.3.4"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["[::ffff:1.2.3.4]:80", "1.2.3.4"],
    ["2001:db8::1", "2001:db8::1"],
    ["[2001:db8::1]", "2001:db8::1"],
    ["[2001:db8::1]:65535", "2001:db8::1"],
    // ::1:80 is an address; a port needs brackets.
    ["::1:80", "::1:80"],
    ["::ffff:1.2.3.4:80", undefined],
    ["[2001:db8::1]:65536", undefined],
    ["[1.2.3.4]", undefined],
    ["[2001:db8::1", undefined],
    ["2001:db8::1]", undefined],
    ["2001:DB8::1", undefined],
    ["::8.8.8.8", undefined],
    ["::ffff:808:808", undefined],
    ["1.2.3.4 5.6.7.8", undefined],
  ];
  for (const [text, address] of cases) {
    const m = hop.exec(text);
    assert.equal(m ? m[1] ?? m[2] ?? m[3] : undefined, address, text);
  }
});
