/**
 * Client address resolution: the one place that decides which address a
 * request came from. The answer is always the connection's peer or an entry
 * that a trusted proxy vouched for, never a value a client can forge.
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/** A parsed IPv4 or IPv6 address (ipaddr.js). */
export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** An address range: an address and a prefix length. */
export type AddressRange = [Address, number];

// ipaddr.parse also takes "0x7f.1" and "2130706433"; only dotted quads pass here.
function parseLiteral(text: string): Address | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(":") || !ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/**
 * Parses one strict IP literal (no port, no brackets); an IPv6 zone id is
 * dropped. Returns undefined for anything else.
 */
export function parseAddress(text: string): Address | undefined {
  const zone = text.indexOf("%");
  return parseLiteral(zone === -1 ? text : text.slice(0, zone));
}

/**
 * Parses one hop as proxies write it: an address, IPv4 with `:port`,
 * `[IPv6]` with an optional `:port`, optionally in double quotes (RFC 7239).
 */
export function parseHop(raw: string): Address | undefined {
  let text = raw.trim();
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    text = text.slice(1, -1);
  }
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end === -1 || !/^(:\d{1,5})?$/.test(text.slice(end + 1))) {
      return undefined;
    }
    return parseAddress(text.slice(1, end));
  }
  const colon = text.indexOf(":");
  if (colon !== -1 && colon === text.lastIndexOf(":")) {
    if (!/^\d{1,5}$/.test(text.slice(colon + 1))) return undefined;
    text = text.slice(0, colon);
  }
  return parseAddress(text);
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

/** Normalizes an IP literal, or returns undefined when it is not one. */
export function normalizeAddress(text: string): string | undefined {
  const address = parseAddress(text);
  return address && formatAddress(address);
}

/** Parses `10.0.0.0/8`, `::1` or `fd00::/8`; throws on anything else. */
export function parseRange(text: string): AddressRange {
  if (text.includes("/")) {
    const [address, bits] = ipaddr.parseCIDR(text);
    if (!/^\d{1,3}$/.test(text.slice(text.indexOf("/") + 1))) {
      throw new Error(`Not a CIDR range: ${text}`);
    }
    const literal = parseAddress(text.slice(0, text.indexOf("/")));
    if (!literal) throw new Error(`Not a CIDR range: ${text}`);
    // ::ffff:10.0.0.0/104 covers the same hosts as 10.0.0.0/8.
    if (address.kind() === "ipv6" && literal.kind() === "ipv4") {
      if (bits < 96) throw new Error(`Not a CIDR range: ${text}`);
      return [literal, bits - 96];
    }
    return [address, bits];
  }
  const address = parseAddress(text);
  if (!address) throw new Error(`Not an IP address: ${text}`);
  return [address, address.kind() === "ipv4" ? 32 : 128];
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

/**
 * The `for=` value of each element of an RFC 7239 `Forwarded` header, in
 * order; an element without one yields "" so that the walk stops there.
 */
export function splitForwarded(value: string): string[] {
  const hops: string[] = [];
  let element = "";
  let quoted = false;
  for (const char of value + ",") {
    if (char === '"') quoted = !quoted;
    if (char === "," && !quoted) {
      const pair = element.split(";").map((p) => p.trim()).find((p) =>
        p.slice(0, 4).toLowerCase() === "for="
      );
      hops.push(pair ? pair.slice(4) : "");
      element = "";
    } else {
      element += char;
    }
  }
  return hops;
}

/**
 * Resolves the client address behind a connection.
 *
 * Forwarding hops are read only when the peer is trusted. They are walked
 * from the right, skipping trusted proxies; the first untrusted hop is the
 * client. A hop that does not parse ends the walk at the nearest trusted
 * address, because nothing to its left can be vouched for.
 */
export function resolveClient(
  peer: Address,
  hops: readonly string[],
  trusted: AddressRange[],
): Address {
  let client = peer;
  if (!isTrusted(client, trusted)) return client;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseHop(hops[i]);
    if (!hop) return client;
    client = hop;
    if (!isTrusted(hop, trusted)) return hop;
  }
  return client;
}
