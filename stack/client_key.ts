/**
 * Whom nginx's limits count a request against: the client address the
 * answer reports (service/client_ip.ts's rules), keyed by the address for
 * IPv4 and by its /64 for IPv6, since any home or cloud host owns a whole
 * /64 (docs/security.md). Rendered as nginx `map`s and `geo`s over text:
 * nginx has no other way to compute a key from a header.
 *
 * @module
 */

const HEX = "[0-9A-Fa-f]{1,4}";
const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4 = `${OCTET}(?:\\.${OCTET}){3}`;

/**
 * One pattern of an IPv6 address in text and how its first 64 bits read:
 * `replacement` names the pattern's groups as nginx does (`$1`) and writes
 * zeros for the groups `::` stands for.
 */
export interface PrefixPattern {
  /** Matches the whole address (PCRE and JavaScript alike). */
  pattern: string;
  /** The /64 as four groups joined by `:`, from `$n` captures and `0`s. */
  replacement: string;
}

/**
 * The patterns that turn an IPv6 address in text into its /64, for every
 * place `::` can stand (RFC 4291 §2.2): four groups before it (or none at
 * all) give the prefix directly; fewer, and the groups after it say how
 * many zeros it stands for. A dotted IPv4 tail counts as two groups.
 */
export function prefixPatterns(): PrefixPattern[] {
  const patterns: PrefixPattern[] = [
    { pattern: `^(${HEX}):(${HEX}):(${HEX}):(${HEX}):`, replacement: "" },
  ];
  patterns[0].replacement = "$1:$2:$3:$4";
  for (let before = 0; before < 4; before++) {
    for (let after = 0; before + after <= 7; after++) {
      const zeros = 8 - before - after;
      for (const dotted of after >= 2 ? [false, true] : [false]) {
        const hexAfter = dotted ? after - 2 : after;
        const groups = [
          ...Array(hexAfter).fill(`(${HEX})`),
          ...(dotted ? [IPV4] : []),
        ];
        const head = Array(before).fill(`(${HEX})`).join(":");
        const pattern = `^${head}::${groups.join(":")}$`;
        const parts: string[] = [];
        for (let i = 1; i <= before; i++) parts.push(`$${i}`);
        for (let i = 0; i < zeros && parts.length < 4; i++) parts.push("0");
        // What `::` leaves of the first four comes from the groups after it
        // (a dotted tail is the last two groups, never among the first four).
        for (let i = 0; parts.length < 4; i++) {
          parts.push(`$${before + 1 + i}`);
        }
        patterns.push({ pattern, replacement: parts.join(":") });
      }
    }
  }
  return patterns;
}

const GROUPS = ["a", "b", "c", "d"];
const DIGIT = "[0-9A-Fa-f]";

/**
 * The maps from an address in text (`source`) to the key nginx limits on
 * (`target`): an IPv4 address itself (an IPv4-mapped one as IPv4), an IPv6
 * address's /64 as four groups in lowercase without leading zeros (the
 * answer's spelling, RFC 5952), anything else as it is. nginx has no
 * lowercase function; its maps match plain keys case-insensitively, so each
 * digit of the prefix goes through a map of six letters.
 */
export function keyMap(source: string, target: string): string[] {
  const prefix = `${target}_p64`;
  const digits = GROUPS.flatMap((g) =>
    [1, 2, 3, 4].map((i) => `${target.slice(1)}_${g}${i}`)
  );
  const group = (g: string) =>
    "0*" +
    [1, 2, 3, 4].map((i) =>
      `(?<${target.slice(1)}_${g}${i}>${DIGIT})${i === 1 ? "" : "?"}`
    ).join("");
  const lower = GROUPS.map((g) =>
    [1, 2, 3, 4].map((i) => `$${target.slice(1)}_${g}${i}_lc`).join("")
  ).join(":");
  return [
    `map ${source} ${target} {`,
    `  "~^${IPV4}$" ${source};`,
    `  "~*^(?:0{1,4}:){5}ffff:(${IPV4})$" $1;`,
    `  "~*^::ffff:(${IPV4})$" $1;`,
    `  "~:" ${prefix}_lc;`,
    `  default ${source};`,
    "}",
    `map ${source} ${prefix} {`,
    ...prefixPatterns().map((p) => `  "~${p.pattern}" ${p.replacement};`),
    '  default "";',
    "}",
    `map ${prefix} ${prefix}_lc {`,
    `  "~^${GROUPS.map(group).join(":")}$" "${lower}";`,
    `  default ${prefix};`,
    "}",
    ...digits.flatMap((d) => [
      `map $${d} $${d}_lc {`,
      ..."abcdef".split("").map((x) => `  ${x} ${x};`),
      `  default $${d};`,
      "}",
    ]),
  ];
}

const PORT =
  "(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/**
 * An IPv6 address in text (RFC 4291 §2.2, RFC 3986's `IPv6address`): eight
 * groups, or fewer around one `::`, the last 32 bits optionally dotted.
 */
export const IPV6_PATTERN: string = (() => {
  const h = HEX;
  const ls32 = `(?:${h}:${h}|${IPV4})`;
  const upTo = (n: number) => n < 0 ? "" : `(?:(?:${h}:){0,${n}}${h})?`;
  return "(?:" + [
    `(?:${h}:){6}${ls32}`,
    `::(?:${h}:){5}${ls32}`,
    `${upTo(0)}::(?:${h}:){4}${ls32}`,
    `${upTo(1)}::(?:${h}:){3}${ls32}`,
    `${upTo(2)}::(?:${h}:){2}${ls32}`,
    `${upTo(3)}::${h}:${ls32}`,
    `${upTo(4)}::${ls32}`,
    `${upTo(5)}::${h}`,
    `${upTo(6)}::`,
  ].join("|") + ")";
})();

/**
 * The `k`-th `X-Forwarded-For` hop from the right (1 is the rightmost) as
 * client_ip.ts's `parseHop` reads one: spaces or tabs around, `IPv4`,
 * `IPv4:port`, `IPv6`, `[IPv6]` or `[IPv6]:port`; the address is the first
 * of the three captures that matched. No match: no such hop, or not one.
 */
export function hopPattern(k: number): string {
  const address =
    `(?:\\[(${IPV6_PATTERN})\\](?::${PORT})?|(${IPV4})(?::${PORT})?|(${IPV6_PATTERN}))`;
  return `^(?:.*,)?[ \\t]*${address}[ \\t]*(?:,[^,]*){${k - 1}}$`;
}

/** Addresses no client can have (client_ip.ts's `isPossibleClient`). */
export const IMPOSSIBLE = [
  "0.0.0.0/8",
  "224.0.0.0/4",
  // geo reads this one only without its /32.
  "255.255.255.255",
  "::/128",
  "ff00::/8",
];

/** How many hops nginx walks at most (the service walks them all). */
export const WALK_DEPTH = 16;

/**
 * The maps that give `$client_addr`, the address the answer reports (the
 * peer, or with trusted proxies the walk of client_ip.ts's `resolveClient`
 * over `X-Forwarded-For`), and `$client_key`, whom the limits count it
 * against. Each hop's class comes from a `geo`: 1 trusted, 2 a client,
 * 0 none (no address there, or one no client can have), which ends the walk
 * at the nearest trusted address. Maps are evaluated only when read, so a
 * request pays for the hops its walk reaches.
 */
export function clientMaps(trusted: readonly string[]): string[] {
  const lines: string[] = [];
  if (trusted.length === 0) {
    lines.push(
      "map $remote_addr $client_addr {",
      "  default $remote_addr;",
      "}",
    );
    return [...lines, ...keyMap("$client_addr", "$client_key")];
  }
  const ranges = trusted.filter((r) => !IMPOSSIBLE.includes(r));
  lines.push(
    "geo $remote_addr $peer_class {",
    "  default 2;",
    ...ranges.map((r) => `  ${r} 1;`),
    "}",
    "map $peer_class $client_addr {",
    "  1 $walk_1;",
    "  default $remote_addr;",
    "}",
  );
  for (let k = 1; k <= WALK_DEPTH; k++) {
    const previous = k === 1 ? "$remote_addr" : `$hop_${k - 1}`;
    const deeper = k === WALK_DEPTH ? `$hop_${k}` : `$walk_${k + 1}`;
    lines.push(
      `map $http_x_forwarded_for $hop_${k} {`,
      `  "~${hopPattern(k)}" $1$2$3;`,
      '  default "";',
      "}",
      // An empty or unparsable value is 255.255.255.255 to geo: none.
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
  return [...lines, ...keyMap("$client_addr", "$client_key")];
}
