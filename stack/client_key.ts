/**
 * The client address in nginx: `$client_addr`, the address the answer
 * reports (nginx passes it to the worker as `X-Real-IP`, so the two cannot
 * differ), and `$client_key`, whom the limits count it against: the address
 * for IPv4, its /64 for IPv6, since any home or cloud host owns a whole /64
 * (docs/security.md). The walk over `X-Forwarded-For` follows
 * service/client_ip.ts's `resolveClient` with the same hop grammar
 * (service/hop_grammar.ts), rendered as nginx `map`s and `geo`s: nginx has
 * no other way to compute a value from a header.
 *
 * @module
 */
import { HOP } from "../service/hop_grammar.ts";
import { WALK_DEPTH } from "../service/client_ip.ts";

/**
 * The `k`-th `X-Forwarded-For` hop from the right (1 is the rightmost), as
 * `parseHop` reads one: the address is the first of the three captures
 * that matched. No match: no such hop, or not one.
 */
function hopPattern(k: number): string {
  // The lookahead finds the hop before HOP runs: HOP is tried once.
  const rest = `(?:,[^,]*){${k - 1}}$`;
  return `^(?:.*,)?(?=[^,]*${rest})${HOP}${rest}`;
}

/** Addresses no client can have (client_ip.ts's `isPossibleClient`). */
const IMPOSSIBLE = [
  "0.0.0.0/8",
  "224.0.0.0/4",
  // geo reads this one only without its /32.
  "255.255.255.255",
  "::/128",
  "ff00::/8",
];

const H = "[0-9a-f]+";

/**
 * The first four groups of an IPv6 address written as the answer writes it
 * (RFC 5952), by where its `::` stands: among the first four groups, or
 * after them. An IPv4 address matches none and is its own key.
 */
export const KEY_PATTERNS: [string, string][] = [
  [`^(${H}:${H}:${H}:${H}):`, "$1"],
  [`^(${H}:${H}:${H})::`, "$1:0"],
  [`^(${H}:${H})::`, "$1:0:0"],
  [`^(${H})::(${H})(?::${H}){4}$`, "$1:0:0:$2"],
  [`^(${H})::`, "$1:0:0:0"],
  [`^::(${H}):(${H})(?::${H}){4}$`, "0:0:$1:$2"],
  [`^::(${H})(?::${H}){4}$`, "0:0:0:$1"],
  ["^::", "0:0:0:0"],
];

/**
 * The maps that give `$client_addr` (the peer, or with trusted proxies the
 * walk over `X-Forwarded-For`) and `$client_key`. Each hop's class comes
 * from a `geo`: 1 trusted, 2 a client, 0 none (no address there, or one no
 * client can have), which ends the walk at the nearest trusted address.
 * Maps are evaluated only when read, so a request pays for the hops its
 * walk reaches.
 */
export function clientMaps(trusted: readonly string[]): string[] {
  const ranges = trusted.filter((r) => !IMPOSSIBLE.includes(r));
  const lines = trusted.length === 0
    ? ["map $remote_addr $client_addr {", "  default $remote_addr;", "}"]
    : [
      "geo $remote_addr $peer_class {",
      "  default 2;",
      ...ranges.map((r) => `  ${r} 1;`),
      "}",
      "map $peer_class $client_addr {",
      "  1 $walk_1;",
      "  default $remote_addr;",
      "}",
    ];
  for (let k = 1; trusted.length > 0 && k <= WALK_DEPTH; k++) {
    const previous = k === 1 ? "$remote_addr" : `$hop_${k - 1}`;
    const deeper = k === WALK_DEPTH ? `$hop_${k}` : `$walk_${k + 1}`;
    lines.push(
      `map $http_x_forwarded_for $hop_${k} {`,
      `  "~${hopPattern(k)}" $1$2$3;`,
      '  default "";',
      "}",
      // An empty value is 255.255.255.255 to geo: none.
      `geo $hop_${k} $class_${k} {`,
      "  default 2;",
      ...IMPOSSIBLE.map((r) => `  ${r} 0;`),
      ...ranges.map((r) => `  ${r} 1;`),
      "}",
      `map $class_${k} $walk_${k} {`,
      `  1 ${deeper};`,
      `  2 $hop_${k};`,
      `  default ${previous};`,
      "}",
    );
  }
  return [
    ...lines,
    "map $client_addr $client_key {",
    // IPv4 first: one regex, not eight that fail.
    '  "~^[.0-9]+$" $client_addr;',
    ...KEY_PATTERNS.map(([pattern, key]) => `  "~${pattern}" ${key};`),
    "  default $client_addr;",
    "}",
  ];
}
