/**
 * A tiny MaxMind DB (format 2.0) for tests: an IPv4 database with one
 * network whose record is `{location: {time_zone}}`, as a MaxMind city
 * database's records are. Written by hand from the format's specification,
 * so that tests need no licensed file.
 *
 * @module
 */

const text = new TextEncoder();

// A control byte (and extended type byte) then the payload.
function field(type: number, payload: Uint8Array): number[] {
  const size = payload.length;
  if (size >= 29) throw new Error("fixture fields are short");
  const head = type <= 7 ? [(type << 5) | size] : [size, type - 7];
  return [...head, ...payload];
}
const str = (s: string) => field(2, text.encode(s));
const uint = (type: number, n: number, bytes: number) =>
  field(
    type,
    Uint8Array.from({ length: bytes }, (_, i) =>
      (n >> (8 * (bytes - 1 - i))) & 0xff),
  );
function map(entries: [string, number[]][]): number[] {
  return [
    (7 << 5) | entries.length,
    ...entries.flatMap(([k, v]) => [...str(k), ...v]),
  ];
}

/** An IPv4 MMDB mapping `network/bits` to `{location: {time_zone: zone}}`. */
export function cityDbFixture(
  network: string,
  bits: number,
  zone: string,
): Uint8Array {
  const octets = network.split(".").map(Number);
  const bit = (i: number) => (octets[i >> 3] >> (7 - (i & 7))) & 1;
  const nodeCount = bits;
  const data = map([["location", map([["time_zone", str(zone)]])]]);
  // Node i follows bit i; the other branch is "no data" (nodeCount); the
  // last node's branch points at the record: nodeCount + 16 + offset 0.
  const tree: number[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const next = i === nodeCount - 1 ? nodeCount + 16 : i + 1;
    const [left, right] = bit(i) === 0 ? [next, nodeCount] : [nodeCount, next];
    for (const r of [left, right]) {
      tree.push((r >> 16) & 0xff, (r >> 8) & 0xff, r & 0xff);
    }
  }
  const metadata = map([
    ["node_count", uint(6, nodeCount, 4)],
    ["record_size", uint(5, 24, 2)],
    ["ip_version", uint(5, 4, 2)],
    ["database_type", str("Test-City")],
    ["binary_format_major_version", uint(5, 2, 2)],
    ["binary_format_minor_version", uint(5, 0, 2)],
    ["build_epoch", uint(9, 0, 4)],
  ]);
  return Uint8Array.from([
    ...tree,
    ...new Array(16).fill(0),
    ...data,
    0xab,
    0xcd,
    0xef,
    ...text.encode("MaxMind.com"),
    ...metadata,
  ]);
}
