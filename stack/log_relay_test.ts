// The log relay in-process, with fake sinks, streams and clock: what a
// reader of the stack's output sees for each kind of line a child writes.
import assert from "node:assert/strict";
import { LogRelay } from "./log_relay.ts";
import type { ByteSink } from "../service/log_queue.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A sink that keeps what it is given; `stall()` holds writes until `go()`,
// `close()` makes them fail as a closed pipe does.
class FakeSink implements ByteSink {
  chunks: Uint8Array[] = [];
  #held?: PromiseWithResolvers<void>;
  #closed = false;
  async write(bytes: Uint8Array): Promise<number> {
    await this.#held?.promise;
    if (this.#closed) throw new Deno.errors.BrokenPipe("closed");
    this.chunks.push(bytes.slice());
    return bytes.length;
  }
  stall() {
    this.#held = Promise.withResolvers();
  }
  go() {
    this.#held?.resolve();
    this.#held = undefined;
  }
  close() {
    this.#closed = true;
  }
  get text(): string {
    const all = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return decoder.decode(all);
  }
  get lines(): string[] {
    return this.text.split("\n").filter((l) => l !== "");
  }
  get entries(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l));
  }
}

// A child's pipe: a byte stream that yields these chunks in turn.
function pipe(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const left = [...chunks];
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const next = left.shift();
      if (next === undefined) {
        // A read waiting on a closed byte stream is answered with 0 bytes.
        controller.close();
        controller.byobRequest?.respond(0);
      } else {
        controller.enqueue(
          typeof next === "string" ? encoder.encode(next) : next.slice(),
        );
      }
    },
  });
}

function setup(start = Date.UTC(2026, 0, 2, 3, 4, 5)) {
  const clock = { now: start };
  const out = new FakeSink();
  const err = new FakeSink();
  const relay = new LogRelay(out, err, () => clock.now);
  return { relay, out, err, clock };
}

const ACCESS = '{"time":"2026-01-02T03:04:05+00:00","status":200,"path":"/"}';

Deno.test("plain JSON lines pass through byte for byte, even cut between reads", async () => {
  const { relay, out, err } = setup();
  const lines = Array.from(
    { length: 5 },
    (_, i) => ACCESS.replace("/", `/${i}`),
  );
  const text = lines.join("\n") + "\n";
  await relay.relay(
    pipe([text.slice(0, 70), text.slice(70, 71), text.slice(71)]),
    "nginx-access",
    "stdout",
  );
  await relay.flush();
  assert.equal(out.text, text);
  assert.equal(err.text, "");
});

Deno.test("a line longer than one read is cut into error lines, never lost", async () => {
  const { relay, out, err } = setup();
  const long = `{"msg":"${"x".repeat(100_000)}"}`;
  await relay.relay(pipe([long + "\n", ACCESS + "\n"]), "json", "stdout");
  await relay.flush();
  assert.ok(err.entries.map((e) => e.msg).join("") === long);
  assert.deepEqual(out.entries, [{
    ...JSON.parse(ACCESS),
    component: "worker",
  }]);
});

Deno.test("JSON with terminal controls or non-ASCII is re-encoded, escaped", async () => {
  const { relay, out } = setup();
  await relay.relay(
    pipe(['{"msg":"caf\u00e9 \u009b31m red \u2028 x","level":"info"}\n']),
    "json",
    "stdout",
  );
  await relay.flush();
  assert.equal(out.lines.length, 1);
  assert.ok(!/[\u007f-\u009f\u2028\u2029]/.test(out.lines[0]), out.lines[0]);
  assert.ok(out.lines[0].includes("\\u009b"));
  assert.equal(out.entries[0].msg, "caf\u00e9 \u009b31m red \u2028 x");
});

Deno.test("a worker's JSON lines get its index and component, over what the line says", async () => {
  const { relay, out } = setup();
  await relay.relay(
    pipe([
      '{"level":"info","msg":"listening"}\n{}\n{"msg":"x","worker":7}\n',
      '{"msg":"\u00e9"}\n',
    ]),
    "json",
    "stdout",
    { worker: 3 },
  );
  await relay.flush();
  const worker = { component: "worker", worker: 3 };
  assert.deepEqual(out.entries, [
    { level: "info", msg: "listening", ...worker },
    worker,
    { msg: "x", ...worker },
    { msg: "\u00e9", ...worker },
  ]);
});

Deno.test("Deno's coloured uncaught error is one error line with the worker, no escapes", async () => {
  const { relay, out, err } = setup();
  await relay.relay(
    pipe([
      "\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Uncaught (in promise) Error: boom\n" +
      "    at \x1b[0m\x1b[36mfile:///app/worker.js\x1b[0m:\x1b[0m\x1b[33m1\x1b[0m:7\n" +
      "    at main (file:///app/worker.js:9:3)\n",
      "\x1b[33mWarning\x1b[0m Not implemented: x\n",
      "error: unable to create worker threads\n",
    ]),
    "json",
    "stderr",
    { worker: 1 },
  );
  await relay.flush();
  assert.equal(out.text, "");
  assert.ok(!err.text.includes("\\u001b"), err.text);
  const [uncaught, warning, threads] = err.entries;
  assert.deepEqual(
    { ...uncaught, time: undefined },
    {
      time: undefined,
      level: "error",
      msg: "error: Uncaught (in promise) Error: boom\n" +
        "    at file:///app/worker.js:1:7\n" +
        "    at main (file:///app/worker.js:9:3)",
      component: "worker",
      worker: 1,
    },
  );
  assert.equal(warning.level, "warn");
  assert.equal(warning.worker, 1);
  assert.equal(threads.level, "error");
  assert.equal(threads.msg, "error: unable to create worker threads");
  assert.equal(err.entries.length, 3);
});

Deno.test("a worker's text and JSON lines keep their order", async () => {
  const { relay, err } = setup();
  await relay.relay(
    pipe(['error: a\n{"msg":"\u00e9"}\nerror: b\n{"msg":"c"}\n']),
    "json",
    "stderr",
    { worker: 2 },
  );
  await relay.flush();
  assert.deepEqual(err.entries.map((e) => [e.msg, e.worker]), [
    ["error: a", 2],
    ["\u00e9", 2],
    ["error: b", 2],
    ["c", 2],
  ]);
});

Deno.test("a child's text is written on exit, even while the child lives", async () => {
  const { relay, err } = setup();
  let controller!: ReadableByteStreamController;
  const stream = new ReadableStream({
    type: "bytes",
    start(c) {
      controller = c;
      c.enqueue(encoder.encode("error: out of memory\n"));
    },
  });
  const relayed = relay.relay(stream, "json", "stderr", { worker: 0 });
  await new Promise((r) => setTimeout(r, 10));
  await relay.flush();
  assert.equal(err.entries.length, 1);
  assert.equal(err.entries[0].msg, "error: out of memory");
  controller.close();
  controller.byobRequest?.respond(0);
  await relayed;
  assert.equal(err.entries.length, 1);
});

Deno.test("text on nginx's stdout is an error line marked nginx", async () => {
  const { relay, err } = setup();
  await relay.relay(pipe(["oops\n"]), "nginx-access", "stdout");
  await relay.flush();
  assert.deepEqual(
    { ...err.entries[0], time: undefined },
    { time: undefined, level: "error", msg: "oops", component: "nginx" },
  );
});

const NGINX_ERROR = "2026/01/02 03:04:05 [error] 12#12: *3 open() failed";

Deno.test("nginx's error log becomes JSON, 20 lines a second, the rest counted", async () => {
  const { relay, err, clock } = setup();
  const lines = Array.from({ length: 30 }, () => NGINX_ERROR + "\n").join("");
  await relay.relay(pipe([lines]), "nginx-error", "stderr");
  clock.now += 1000;
  await relay.relay(
    pipe(["2026/01/02 03:04:06 [warn] 12#12: later\n"]),
    "nginx-error",
    "stderr",
  );
  await relay.flush();
  const entries = err.entries;
  assert.equal(entries.length, 20 + 2);
  assert.deepEqual(entries[0], {
    time: "2026-01-02T03:04:05.000+00:00",
    level: "error",
    msg: "open() failed",
    component: "nginx",
    connection: 3,
  });
  assert.match(String(entries[20].msg), /suppressed/);
  assert.equal(entries[20].suppressed, 10);
  assert.equal(entries[21].msg, "later");
  assert.equal(entries[21].level, "warn");
});

Deno.test("refused requests are one line per client per second, with their count", async () => {
  const { relay, out, err, clock } = setup();
  const second = (a: number, b: number) =>
    [
      ...Array.from({ length: a }, () => "429 192.0.2.1\n"),
      ACCESS + "\n",
      ...Array.from({ length: b }, () => "429 2001:db8::1\n"),
    ].join("");
  await relay.relay(pipe([second(500, 3)]), "nginx-access", "stdout");
  clock.now += 1000;
  await relay.relay(pipe([second(7, 0)]), "nginx-access", "stdout");
  await relay.flush();
  assert.deepEqual(out.lines, [ACCESS, ACCESS]);
  const counts = err.entries.map((e) => [e.msg, e.client, e.status, e.count]);
  assert.deepEqual(counts, [
    ["requests refused", "192.0.2.1", 429, 500],
    ["requests refused", "2001:db8::1", 429, 3],
    ["requests refused", "192.0.2.1", 429, 7],
  ]);
});

// Every line the relay wrote is one JSON object, with no byte that acts on
// a terminal (C0 and C1 controls, DEL) left raw.
function assertClean(sink: FakeSink): void {
  for (const line of sink.lines) {
    const raw = [...line].find((c) => c < " " || (c >= "\x7f" && c <= "\x9f"));
    assert.equal(raw, undefined, line.slice(0, 200));
    assert.equal(typeof JSON.parse(line), "object");
  }
}

Deno.test("a worker's 10 MiB line is relayed in pieces, every byte kept, and the relay goes on", async () => {
  const { relay, out, err } = setup();
  const huge = `{"level":"info","msg":"${"x".repeat(10 * 2 ** 20)}"}`;
  await relay.relay(
    pipe([huge + "\n", '{"level":"info","msg":"after"}\n']),
    "json",
    "stdout",
    { worker: 3 },
  );
  await relay.flush();
  assertClean(err);
  assert.ok(err.entries.map((e) => e.msg).join("") === huge, "bytes lost");
  assert.ok(err.entries.every((e) => e.level === "error" && e.worker === 3));
  assert.deepEqual(out.entries.map((e) => e.msg), ["after"]);
});

Deno.test("no piece of a line cut for its length is read as JSON: a tail cannot forge a line", async () => {
  const { relay, out, err } = setup();
  const forged = '{"level":"error","msg":"forged"}';
  // A read is 64 KiB: the first piece ends where the forged object starts,
  // or is itself a whole object with more of the line after it.
  const pad = (n: number) => `{"msg":"${"x".repeat(n - 10)}"}`;
  await relay.relay(
    pipe([
      "y".repeat(65_536) + forged + "\n",
      pad(65_536) + " and more\n",
    ]),
    "json",
    "stdout",
    { worker: 1 },
  );
  await relay.flush();
  const passed = out.entries.map((e) => String(e.msg).slice(0, 10));
  assert.deepEqual(passed, [], "nothing passed as a JSON line");
  assert.ok(!err.entries.some((e) => e.msg === "forged"), "forged");
  // Each piece an entry; lines that follow one another within 100 ms are
  // one entry, as Deno's multi-line errors are.
  const pieces = err.entries.map((e) => String(e.msg));
  assert.deepEqual(pieces.map((p) => p.length), [
    65_536,
    forged.length + 1 + 65_536,
    9,
  ]);
  assert.ok(
    pieces.join("") ===
      "y".repeat(65_536) + forged + "\n" + pad(65_536) + " and more",
  );
});

Deno.test("binary garbage from a worker or nginx is error lines of JSON, nothing raw", async () => {
  const { relay, out, err } = setup();
  const garbage = new Uint8Array(200_000);
  for (let i = 0, x = 7; i < garbage.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    garbage[i] = x >> 16;
  }
  await Promise.all([
    relay.relay(pipe([garbage]), "json", "stdout", { worker: 0 }),
    relay.relay(pipe([garbage]), "nginx-access", "stdout"),
    relay.relay(pipe([garbage]), "nginx-error", "stderr"),
  ]);
  await relay.flush();
  assert.deepEqual(out.lines, []);
  assertClean(err);
  assert.ok(err.entries.length > 0);
  assert.ok(err.entries.every((e) => e.level === "error" || e.suppressed));
});

Deno.test("terminal escapes are stripped from text and escaped in JSON, never written raw", async () => {
  const { relay, out, err } = setup();
  await relay.relay(
    pipe([
      "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m \u009b31mx\n",
      '{"level":"info","msg":"\\u001b[2J\\u009b31m"}\n',
    ]),
    "json",
    "stdout",
    { worker: 2 },
  );
  await relay.flush();
  assertClean(out);
  assertClean(err);
  assert.equal(err.entries[0].msg, "red x");
  assert.equal(out.entries[0].msg, "\x1b[2J\u009b31m", "the worker's own data");
});

Deno.test("a worker's line cannot pass for another worker's or the supervisor's: the relay's fields win", async () => {
  const { relay, out, err } = setup();
  await relay.relay(
    pipe([
      '{"level":"info","msg":"x","worker":7,"component":"stack"}\n',
      '{"level":"error","msg":"y","component":"nginx"}\n',
    ]),
    "json",
    "stdout",
    { worker: 3 },
  );
  await relay.relay(pipe(["oops\n"]), "json", "stderr", { worker: 3 });
  await relay.flush();
  assert.deepEqual(out.entries, [
    { level: "info", msg: "x", worker: 3, component: "worker" },
    { level: "error", msg: "y", worker: 3, component: "worker" },
  ]);
  assert.equal(err.entries[0].component, "worker");
});
