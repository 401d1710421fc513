/**
 * One table of `X-Forwarded-For` cases, run against the address rules
 * alone (service/client_ip_test.ts), the service alone and the stack
 * (tests/server_test.ts, tests/stack_test.ts): one rule set, one answer.
 *
 * @module
 */

/** The trusted proxies of every run of the table. */
export const TABLE_TRUSTED = "127.0.0.2,10.0.0.0/8";
/** The trusted proxy the requests come from. */
export const TABLE_PEER = "127.0.0.2";

// Sixteen trusted hops, 10.0.0.16 leftmost: the walk reads no further.
const SIXTEEN = Array.from({ length: 16 }, (_, i) => `10.0.0.${16 - i}`);

/**
 * Header lines as the trusted proxy sends them, and the address reported:
 * the peer itself whenever the rightmost hop is not a client address.
 */
export const FORWARDING_CASES: [string[], string][] = [
  [["198.51.100.9"], "198.51.100.9"],
  [["6.6.6.6, 198.51.100.9"], "198.51.100.9"],
  [["6.6.6.6,198.51.100.9"], "198.51.100.9"],
  [["6.6.6.6,\t198.51.100.9"], "198.51.100.9"],
  [["198.51.100.9, 10.1.1.1"], "198.51.100.9"],
  [["10.2.2.2, 10.1.1.1"], "10.2.2.2"],
  [["6.6.6.6", "198.51.100.9"], "198.51.100.9"],
  [["2001:db8::1"], "2001:db8::1"],
  [["::ffff:198.51.100.9"], "198.51.100.9"],
  [["[::ffff:198.51.100.9]:80"], "198.51.100.9"],
  // RFC 5952: of two equal runs of zeros the first is `::`.
  [["2001:db8::1:0:0:1"], "2001:db8::1:0:0:1"],
  [["::1:0:0:1:1:1"], "::1:0:0:1:1:1"],
  [["198.51.100.9, ::ffff:198.51.100.10"], "198.51.100.10"],
  [[["198.51.100.9", ...SIXTEEN].join(", ")], "10.0.0.16"],
  [["198.51.100.9:4711"], "198.51.100.9"],
  [["[2001:db8::1]:4711"], "2001:db8::1"],
  [["[2001:db8::1]"], "2001:db8::1"],
  [["9.9.9.9, 0.0.0.0, 10.0.0.5"], "10.0.0.5"],
  [["6.6.6.6, junk, 198.51.100.9"], "198.51.100.9"],
  // Not an address in the one accepted spelling: the peer is the answer.
  [["0177.0.0.1"], TABLE_PEER],
  [["006.006.006.006"], TABLE_PEER],
  [["0x7f.1"], TABLE_PEER],
  [["2130706433"], TABLE_PEER],
  [["::ffff:006.6.6.6"], TABLE_PEER],
  // Another spelling of an address than the one the answer writes.
  [["2001:DB8:0:0::1"], TABLE_PEER],
  [["2001:db8:0:0:0:0:0:1"], TABLE_PEER],
  [["2001:0db8::1"], TABLE_PEER],
  [["2001:db8::0:1"], TABLE_PEER],
  [["2001:db8:0:0:1::1"], TABLE_PEER],
  [["0:0:1::1:1:1"], TABLE_PEER],
  [["::ffff:102:304"], TABLE_PEER],
  [["0:0::ffff:1.2.3.4"], TABLE_PEER],
  [["::0:ffff:198.51.100.9"], TABLE_PEER],
  [["[::ffff:c633:6409]:80"], TABLE_PEER],
  [["::FFFF:198.51.100.9"], TABLE_PEER],
  [["6.6.6.6, ::ffff:c633:6409"], TABLE_PEER],
  // IPv4-compatible (RFC 4291), so not 1.2.3.4 but ::102:304 misspelt.
  [["::1.2.3.4"], TABLE_PEER],
  [["6.6.6.6 9.9.9.9"], TABLE_PEER],
  [["6.6.6.6\t9.9.9.9"], TABLE_PEER],
  [["6.6.6.6,"], TABLE_PEER],
  [['"198.51.100.9"'], TABLE_PEER],
  [["fe80::1%eth0"], TABLE_PEER],
  [["6.6.6.6%evil"], TABLE_PEER],
  [["6.6.6.6:99999"], TABLE_PEER],
  [["6.6.6.6:"], TABLE_PEER],
  [["[6.6.6.6]"], TABLE_PEER],
  [["[2001:db8::1"], TABLE_PEER],
  [["unknown"], TABLE_PEER],
  [["<script>"], TABLE_PEER],
  // Addresses no client can have.
  [["::"], TABLE_PEER],
  [["0.0.0.0"], TABLE_PEER],
  [["0.1.2.3"], TABLE_PEER],
  [["::ffff:0.0.0.0"], TABLE_PEER],
  [["255.255.255.255"], TABLE_PEER],
  [["224.0.0.1"], TABLE_PEER],
  [["ff02::1"], TABLE_PEER],
];
