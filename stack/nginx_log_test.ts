// nginx's logs as the relay summarises them: the error log's lines in
// JSON within a budget, refused requests counted per client per second.
import assert from "node:assert/strict";
import { LineBudget, nginxErrorLine, RefusedRequests } from "./nginx_log.ts";

Deno.test("an nginx error-log line gives its time, level, message and connection", () => {
  assert.deepEqual(
    nginxErrorLine("2026/01/02 03:04:05 [crit] 12#12: *3 open() failed"),
    {
      time: "2026-01-02T03:04:05.000+00:00",
      level: "error",
      msg: "open() failed",
      component: "nginx",
      connection: 3,
    },
  );
  const other = nginxErrorLine("\x1b[31mnot nginx's form", new Date(0));
  assert.deepEqual(other, {
    time: "1970-01-01T00:00:00.000+00:00",
    level: "error",
    msg: "not nginx's form",
    component: "nginx",
  });
});

Deno.test("the budget lets 20 lines a second through and counts the rest once", () => {
  const budget = new LineBudget();
  const taken = Array.from({ length: 30 }, () => budget.take());
  assert.equal(taken.filter(Boolean).length, 20);
  assert.deepEqual(budget.end().map((l) => l.suppressed), [10]);
  assert.equal(budget.take(), true, "a new second, a new budget");
  assert.deepEqual(budget.end(), []);
});

Deno.test("past 100 clients a second, refused requests are counted together", () => {
  const refused = new RefusedRequests();
  for (let i = 0; i < 150; i++) refused.count(`429 10.0.0.${i}`);
  refused.count("429 10.0.0.1");
  assert.equal(refused.count('{"status":200}'), false);
  const lines = refused.end();
  assert.equal(lines.length, 101);
  assert.deepEqual(lines[1], {
    level: "warn",
    msg: "requests refused",
    component: "nginx",
    client: "10.0.0.1",
    status: 429,
    count: 2,
  });
  assert.equal(lines[100].msg, "requests refused from more clients");
  assert.equal(lines[100].count, 50);
  assert.deepEqual(refused.end(), [], "each second starts afresh");
});
