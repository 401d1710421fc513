/**
 * The one spelling of an address that a forwarding hop may use, as regular
 * expressions that both doors run: the service reads each hop with them
 * (client_ip.ts), the stack's nginx renders them into its maps
 * (stack/client_key.ts). An address is written as the answer writes it: a
 * dotted quad without leading zeros, RFC 5952's IPv6 (lowercase, no leading
 * zeros, `::` for the longest run of two or more zero groups, the leftmost
 * of equal runs), or an IPv4-mapped address as `::ffff:` and the dotted quad
 * (RFC 5952 §5). Any other spelling is not an address. The patterns use
 * only what PCRE and JavaScript read alike (no flags, lookahead only).
 *
 * @module
 */

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";

/** A dotted quad without leading zeros. */
export const IPV4: string = `${OCTET}(?:\\.${OCTET}){3}`;

/** A port as proxies write it: 0 to 65535, at most five digits. */
export const PORT: string =
  "(?:\\d{1,4}|[0-5]\\d{4}|6[0-4]\\d{3}|65[0-4]\\d\\d|655[0-2]\\d|6553[0-5])";

const HEX = "[0-9a-f]";
// A nonzero group, then any group, without leading zeros.
const N = "[1-9a-f][0-9a-f]{0,3}";
const G = `(?:0|${N})`;
// Exactly (or at least) `n` groups from here to the end of the address.
const groups = (n: number, exact: boolean) =>
  `(?::*${HEX}+(?!${HEX})){${n}}` + (exact ? ":*(?![0-9a-f:])" : "");
// A run of `n` zero groups before the `::`, or after it.
const zerosBefore = (n: number) =>
  `(?:${HEX}+:)*0${":0".repeat(n - 1)}:(?:${HEX}+:)*:`;
const zerosAfter = (n: number) =>
  `[0-9a-f:]*::(?:${HEX}+:)*0${":0".repeat(n - 1)}(?!${HEX})`;

/**
 * An IPv6 address in RFC 5952's form, IPv4-mapped ones excepted (their one
 * spelling is `::ffff:` and a dotted quad). Eight groups without two zero
 * groups side by side, or groups around a `::` that stands for two or
 * more: its neighbours are not zero, and no run of zeros written out is as
 * long as it (on its left) or longer (on its right). That can only happen
 * with five or six groups written; with four or fewer, `::` stands for
 * more zeros than a run could have.
 */
export const IPV6: string = `(?!::ffff:${HEX}+:${HEX}+(?![0-9a-f:]))(?:` + [
  `(?:(?:${N}|0(?!:0)):){7}${G}`,
  "(?:" + [
    `(?=${groups(6, true)})(?!${zerosBefore(2)})(?!${zerosAfter(3)})`,
    `(?=${groups(5, true)})(?!${zerosBefore(3)})(?!${zerosAfter(4)})`,
    `(?!${groups(5, false)})`,
  ].join("|") + `)(?:(?:${G}:)*${N})?::(?:${N}(?::${G})*)?`,
].join("|") + ")";

/**
 * One `X-Forwarded-For` hop, spaces or tabs around: `IPv4`, `IPv4:port`,
 * `IPv6`, `[IPv6]` or `[IPv6]:port` (IPv6 here includes `::ffff:IPv4`). The
 * address is the first of three captures that matched: a dotted quad, the
 * dotted quad of `::ffff:IPv4`, or IPv6. Brackets come in pairs: an opening
 * one needs its closing one right after the address, and a bare address is
 * followed by none.
 */
export const HOP: string = "[ \\t]*(?:(" + IPV4 + `)(?::${PORT})?|` +
  "(?:\\[(?=[0-9a-f:.]+\\])|(?![0-9a-f:.]*\\]))" +
  `(?:::ffff:(${IPV4})|(${IPV6}))(?:\\](?::${PORT})?)?)[ \\t]*`;
