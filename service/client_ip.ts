/**
 * Client address resolution: the one place that decides which address a
 * request came from, alone or behind the stack's nginx (which hands the
 * worker the TCP peer and the raw `X-Forwarded-For`, so both modes follow
 * these rules). The answer is always the connection's peer or an entry that
 * a trusted proxy vouched for, never a value a client can forge, and never
 * an address no client can have (unspecified, multicast, broadcast).
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { HOP, IPV4, IPV6, PORT } from "./hop_grammar.ts";

/** A parsed IPv4 or IPv6 address (ipaddr.js). */
export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** An address range: an address and a prefix length. */
export type AddressRange = [Address, number];

const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Parses one strict IP literal: a dotted quad without leading zeros, or an
 * IPv6 address (an IPv4-mapped one becomes IPv4). No zone id, port,
 * brackets or whitespace; ipaddr.js alone also takes "0x7f.1",
 * "2130706433", "fe80::1%eth0" and "::ffff:001.2.3.4", and reads
 * `::1.2.3.4` as IPv4-mapped where RFC 4291 §2.5.5.1 makes it the
 * IPv4-compatible `::102:304`.
 */
export function parseAddress(text: string): Address | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!IPV6_CHARS.test(text) || !text.includes(":")) return undefined;
  if (
    text.includes(".") &&
    !ipaddr.IPv4.isValidFourPartDecimal(text.slice(text.lastIndexOf(":") + 1))
  ) {
    return undefined;
  }
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(
    text.replace(/^::(?=\d+\.\d+\.\d+\.\d+$)/, "0:0:0:0:0:0:"),
  );
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/**
 * Whether a connection can come from this address: not unspecified
 * (0.0.0.0/8, ::), multicast (224.0.0.0/4, ff00::/8) or broadcast. Checked
 * directly: ipaddr.js's range() walks every special range, 1.2 µs a hop.
 */
export function isPossibleClient(address: Address): boolean {
  if (address.kind() === "ipv4") {
    const octets = (address as ipaddr.IPv4).octets;
    return octets[0] !== 0 && (octets[0] < 224 || octets[0] > 239) &&
      !octets.every((o) => o === 255);
  }
  const parts = (address as ipaddr.IPv6).parts;
  return parts[0] < 0xff00 && parts.some((p) => p !== 0);
}

/** {@linkcode parseAddress}, and undefined for an impossible client. */
export function parseClient(text: string): Address | undefined {
  const address = parseAddress(text);
  return address && isPossibleClient(address) ? address : undefined;
}

/** Formats an address: dotted quad, or RFC 5952 IPv6 (IPv4-mapped as IPv4). */
export function formatAddress(address: Address): string {
  return address.kind() === "ipv6"
    ? (address as ipaddr.IPv6).toRFC5952String()
    : address.toString();
}

/** The family of an address as {@linkcode formatAddress} writes it. */
export function addressFamily(formatted: string): "ipv4" | "ipv6" {
  return formatted.includes(":") ? "ipv6" : "ipv4";
}

/** A client address in canonical form, or undefined when it is not one. */
export function normalizeAddress(text: string): string | undefined {
  const address = parseClient(text);
  return address && formatAddress(address);
}

const HOP_TEXT = new RegExp(`^${HOP}$`);
const NODE = new RegExp(
  `^(?:(${IPV4})|\\[(?:::ffff:(${IPV4})|(${IPV6}))\\])(?::(?:${PORT}|_[\\w.-]+))?$`,
);

/**
 * Parses one `X-Forwarded-For` hop: an address in its one spelling
 * (hop_grammar.ts), `IPv4:port`, `[IPv6]` or `[IPv6]:port`, with spaces or
 * tabs around it. Anything else (another spelling, quotes, a zone id,
 * `[IPv4]`, a bad port, an empty hop, two addresses) is not a hop.
 */
export function parseHop(raw: string): Address | undefined {
  const m = HOP_TEXT.exec(raw);
  return m ? parseClient(m[1] ?? m[2] ?? m[3]) : undefined;
}

/**
 * Parses an RFC 7239 node (a `for=` value, unquoted): `IPv4`, `[IPv6]`,
 * either with `:port` or `:_obfport`, the address in its one spelling.
 * `unknown`, obfuscated names and anything else are not addresses.
 */
export function parseForwardedNode(value: string): Address | undefined {
  const m = NODE.exec(value);
  return m ? parseClient(m[1] ?? m[2] ?? m[3]) : undefined;
}

/** Parses `10.0.0.0/8`, `::1` or `fd00::/8`; throws on anything else. */
export function parseRange(text: string): AddressRange {
  const slash = text.indexOf("/");
  const literal = parseAddress(slash === -1 ? text : text.slice(0, slash));
  if (!literal) throw new Error(`Not an IP address or CIDR range: ${text}`);
  const max = literal.kind() === "ipv4" ? 32 : 128;
  if (slash === -1) return [literal, max];
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) throw new Error(`Not a CIDR range: ${text}`);
  let bits = Number(bitsText);
  // ::ffff:10.0.0.0/104 covers the same hosts as 10.0.0.0/8.
  if (literal.kind() === "ipv4" && text.slice(0, slash).includes(":")) {
    bits -= 96;
    if (bits < 0) throw new Error(`Not a CIDR range: ${text}`);
  }
  if (bits > max) throw new Error(`Not a CIDR range: ${text}`);
  const network = literal.kind() === "ipv4"
    ? ipaddr.IPv4.networkAddressFromCIDR(`${literal}/${bits}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${literal}/${bits}`);
  return [network, bits];
}

/** A range in the one form nginx and the logs see: `network/bits`. */
export function formatRange([address, bits]: AddressRange): string {
  return `${formatAddress(address)}/${bits}`;
}

/** Whether the address lies in any of the ranges. */
export function isTrusted(address: Address, ranges: AddressRange[]): boolean {
  for (const [base, bits] of ranges) {
    if (base.kind() === address.kind() && address.match(base, bits)) {
      return true;
    }
  }
  return false;
}

/** Splits an `X-Forwarded-For` value (all lines merged) into hops. */
export function splitForwardedFor(value: string): string[] {
  return value.split(",");
}

/** How many hops the walk reads at most, at either door. */
export const WALK_DEPTH = 16;

/**
 * Resolves the client address behind a connection.
 *
 * Forwarding hops are read only when the peer is trusted. They are walked
 * from the right, skipping trusted proxies; the first untrusted hop is the
 * client. A hop that `parse` refuses ends the walk at the nearest trusted
 * address, because nothing to its left can be vouched for; so does the
 * {@linkcode WALK_DEPTH}th hop, trusted or not.
 */
export function resolveClient(
  peer: Address,
  hops: readonly string[],
  trusted: AddressRange[],
  parse: (hop: string) => Address | undefined = parseHop,
): Address {
  let client = peer;
  if (!isTrusted(client, trusted)) return client;
  const last = Math.max(0, hops.length - WALK_DEPTH);
  for (let i = hops.length - 1; i >= last; i--) {
    const hop = parse(hops[i]);
    if (!hop) return client;
    client = hop;
    if (!isTrusted(hop, trusted)) return hop;
  }
  return client;
}
