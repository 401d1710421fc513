/**
 * RFC 7239 `Forwarded`, read strictly and from the right: the proxy that
 * appended the last element wrote it well, whatever a client put before it,
 * so an unbalanced quote or any other malformed element on the left cannot
 * swallow what the proxy wrote. The walk ends at the first malformed element.
 *
 * @module
 */

// RFC 7230 tchar.
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
// The inside of a quoted-string: qdtext and quoted-pair (RFC 7230 3.2.6).
const QUOTED =
  /^(?:[\t \x21\x23-\x5B\x5D-\x7E\x80-\xFF]|\\[\t \x21-\x7E\x80-\xFF])*$/;

function isTchar(char: string | undefined): boolean {
  return char !== undefined && TCHAR.test(char);
}

// Reads a token that ends at `end` (inclusive), backwards; its first index.
function tokenStart(text: string, end: number): number {
  let i = end;
  while (i >= 0 && isTchar(text[i])) i--;
  return i + 1;
}

// Reads a quoted-string whose closing quote is at `end`, backwards: the
// opening quote is the first one not escaped by an odd run of backslashes.
function quotedString(
  text: string,
  end: number,
): { start: number; value: string } | undefined {
  for (let i = end - 1; i >= 0; i--) {
    if (text[i] !== '"') continue;
    let slashes = 0;
    while (i - 1 - slashes >= 0 && text[i - 1 - slashes] === "\\") slashes++;
    if (slashes % 2 === 1) continue;
    const inner = text.slice(i + 1, end);
    if (!QUOTED.test(inner)) return undefined;
    return { start: i, value: inner.replace(/\\(.)/g, "$1") };
  }
  return undefined;
}

// One `name=value` pair ending at `end`; its start, lowercased name, value.
function pairBefore(
  text: string,
  end: number,
): { start: number; name: string; value: string } | undefined {
  let value: string;
  let i: number;
  if (text[end] === '"') {
    const quoted = quotedString(text, end);
    if (!quoted) return undefined;
    value = quoted.value;
    i = quoted.start - 1;
  } else {
    const start = tokenStart(text, end);
    if (start > end) return undefined;
    value = text.slice(start, end + 1);
    i = start - 1;
  }
  if (text[i] !== "=") return undefined;
  const start = tokenStart(text, i - 1);
  if (start > i - 1) return undefined;
  return { start, name: text.slice(start, i).toLowerCase(), value };
}

function skipSpaceBack(text: string, i: number): number {
  while (i >= 0 && (text[i] === " " || text[i] === "\t")) i--;
  return i;
}

// One element ending at `end`: its `for=` value ("" if none), where it
// starts, or undefined when it is malformed.
function elementBefore(
  text: string,
  end: number,
): { start: number; forValue: string } | undefined {
  const names = new Set<string>();
  let forValue = "";
  let i = end;
  while (true) {
    if (i >= 0 && text[i] !== ";" && text[i] !== ",") {
      const pair = pairBefore(text, i);
      // Each parameter at most once per element (RFC 7239 section 4).
      if (!pair || names.has(pair.name)) return undefined;
      names.add(pair.name);
      if (pair.name === "for") forValue = pair.value;
      i = pair.start - 1;
    }
    if (i < 0 || text[i] !== ";") break;
    i--;
  }
  if (names.size === 0) return undefined;
  return { start: i + 1, forValue };
}

/**
 * The `for=` value of each element of a `Forwarded` value (all lines
 * merged), left to right. Read from the right; at the first malformed
 * element, or an element without `for=`, it stops and puts "" in its place,
 * so that the walk over these hops ends there.
 */
export function splitForwarded(value: string): string[] {
  const hops: string[] = [];
  let i = skipSpaceBack(value, value.length - 1);
  while (i >= 0) {
    const element = elementBefore(value, i);
    const before = element ? skipSpaceBack(value, element.start - 1) : -1;
    if (
      !element || element.forValue === "" ||
      (before >= 0 && value[before] !== ",")
    ) {
      hops.push("");
      break;
    }
    hops.push(element.forValue);
    if (before < 0) break;
    i = skipSpaceBack(value, before - 1);
    // An empty element ("a, , b" or a leading comma) is malformed too.
    if (i < 0 || value[i] === ",") {
      hops.push("");
      break;
    }
  }
  return hops.reverse();
}
