// RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-12) on the answers
// the stack rate-limits, and Date readable by pages elsewhere (CORS).
import assert from "node:assert/strict";
import { withStack } from "./test_util.ts";

Deno.test("the stack's rate-limited answers carry RateLimit-Policy with RATE_LIMIT, 429s too", async () => {
  await withStack({ RATE_LIMIT: "5" }, async (stack) => {
    const res = await fetch(`${stack.url}/api/timezone/Europe/London`);
    await res.body?.cancel();
    assert.equal(res.status, 200);
    const policy = '"per-address";q=5;w=1;ipts-burst=10';
    assert.equal(res.headers.get("ratelimit-policy"), policy);
    // The location's own add_header kept every common header.
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.ok(res.headers.get("x-request-id"));
    assert.match(res.headers.get("access-control-expose-headers")!, /\bDate\b/);
    let limited: Response | undefined;
    for (let i = 0; i < 200 && !limited; i++) {
      const r = await fetch(`${stack.url}/ip`);
      await r.body?.cancel();
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, "no 429 after 200 requests at RATE_LIMIT=5");
    assert.equal(limited.headers.get("ratelimit-policy"), policy);
    assert.equal(limited.headers.get("retry-after"), "1");
  });
});

Deno.test("without a rate limit there is no RateLimit-Policy", async () => {
  await withStack({ RATE_LIMIT: "0" }, async (stack) => {
    const res = await fetch(`${stack.url}/ip`);
    await res.body?.cancel();
    assert.equal(res.headers.get("ratelimit-policy"), null);
    assert.match(res.headers.get("access-control-expose-headers")!, /\bDate\b/);
  });
});
