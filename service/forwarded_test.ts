// RFC 7239 Forwarded, read strictly from the right: what a client writes
// on the left never changes what the trusted proxy appended.
import assert from "node:assert/strict";
import { splitForwarded } from "./forwarded.ts";
import {
  formatAddress,
  parseAddress,
  parseForwardedNode,
  parseRange,
  resolveClient,
} from "./client_ip.ts";

Deno.test("splitForwarded reads for= of each element, quotes respected", () => {
  const cases: [string, string[]][] = [
    [
      'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"',
      ["192.0.2.60", "[2001:db8:cafe::17]:4711"],
    ],
    ['for="a,b", for=1.2.3.4', ["a,b", "1.2.3.4"]],
    ['for="\\"x\\\\", for=1.2.3.4', ['"x\\', "1.2.3.4"]],
    ["for=1.2.3.4;;proto=https", ["1.2.3.4"]],
    ["for=1.2.3.4,\tfor=5.6.7.8", ["1.2.3.4", "5.6.7.8"]],
    // An element without for= ends the list there.
    ["for=1.2.3.4, proto=https", [""]],
    ["", []],
  ];
  for (const [value, hops] of cases) {
    assert.deepEqual(splitForwarded(value), hops, value);
  }
});

Deno.test("a malformed element ends the list; what is right of it stays", () => {
  const cases: [string, string[]][] = [
    // The client's unbalanced quote cannot swallow the proxy's element.
    ['for=6.6.6.6, a=", for=9.9.9.9', ["", "9.9.9.9"]],
    ['for=6.6.6.6, a="x, for=1.1.1.1", for=9.9.9.9', ["", "9.9.9.9"]],
    // Two elements with no comma between: one malformed element.
    ["for=6.6.6.6 for=9.9.9.9", [""]],
    ["for=1.2.3.4; proto=http", [""]],
    ["for =1.2.3.4", [""]],
    ["for=1.2.3.4;for=5.6.7.8", [""]],
    ["for=[2001:db8::1]", [""]],
    ["for=1.2.3.4:80", [""]],
    ['for="1.2.3.4', [""]],
    ['for=1.2.3.4"', [""]],
    ["for=1.2.3.4, , for=5.6.7.8", ["", "5.6.7.8"]],
    [", for=5.6.7.8", ["", "5.6.7.8"]],
    ["for=5.6.7.8,", [""]],
    ['for="a\x01b"', [""]],
  ];
  for (const [value, hops] of cases) {
    assert.deepEqual(splitForwarded(value), hops, value);
  }
});

Deno.test("through a trusted proxy, a forged Forwarded never wins", () => {
  const trusted = ["127.0.0.1", "10.0.0.0/8"].map(parseRange);
  const peer = parseAddress("127.0.0.1")!;
  const resolve = (value: string) =>
    formatAddress(
      resolveClient(peer, splitForwarded(value), trusted, parseForwardedNode),
    );
  assert.equal(resolve('for=6.6.6.6, a=", for=9.9.9.9'), "9.9.9.9");
  assert.equal(resolve('for=6.6.6.6, a=", for=10.0.0.3'), "10.0.0.3");
  assert.equal(
    resolve('for=6.6.6.6, for="[2001:db8::9]:80";proto=https'),
    "2001:db8::9",
  );
  assert.equal(resolve("for=9.9.9.9, for=10.0.0.2"), "9.9.9.9");
  assert.equal(resolve("for=unknown, for=10.0.0.2"), "10.0.0.2");
  assert.equal(resolve("for=0.0.0.0"), "127.0.0.1");
  assert.equal(resolve('for="[::]"'), "127.0.0.1");
});
