// The supervisor's decisions, driven in-process by a fake clock and fake
// children: every transition of a child's life, without a process.
import assert from "node:assert/strict";
import {
  type Action,
  type Child,
  type Event,
  newChild,
  POLICY,
  type Policy,
  step,
} from "./supervision.ts";

/** A fake child and clock: feeds events at given times, keeps the actions. */
class Harness {
  now = 0;
  child: Child;
  actions: Action[] = [];
  pids = 100;

  constructor(readonly policy: Policy = POLICY) {
    this.child = newChild("worker 0", { worker: 0 }, 0);
  }

  /** Moves the clock to `at` and feeds `event`; returns its actions. */
  at(at: number, event: Event): Action[] {
    assert.ok(at >= this.now, "the clock only moves forward");
    this.now = at;
    const [next, actions] = step(this.child, event, at, this.policy);
    this.child = next;
    this.actions.push(...actions);
    // A spawn is answered at once, as the shell does.
    if (actions.some((a) => a.kind === "spawn")) {
      this.child = step(
        this.child,
        { kind: "spawned", pid: ++this.pids },
        at,
        this.policy,
      )[0];
    }
    return actions;
  }

  /** Ticks every `every` ms until `until`, feeding `each` too. */
  run(until: number, every: number, each?: Event): void {
    for (let t = this.now + every; t <= until; t += every) {
      this.at(t, { kind: "tick" });
      if (each && this.child.phase !== "backoff") this.at(t, each);
    }
  }

  logs(level?: string): string[] {
    return this.actions.flatMap((a) =>
      a.kind === "log" && (!level || a.level === level) ? [a.msg] : []
    );
  }

  kinds(actions: Action[]): string[] {
    return actions.map((a) => a.kind);
  }
}

// A check: the child stopped or not, and its own processes seen stopped,
// each a pid or a pid and its start time.
const checked = (
  stopped: boolean,
  children: (number | [number, number])[] = [],
): Event => ({
  kind: "checked",
  stopped,
  stoppedChildren: children.map((c) => {
    const [pid, start] = typeof c === "number" ? [c, 1] : c;
    return { pid, ppid: 101, stopped: true, start };
  }),
});

const exited = (
  code = 1,
  signal: string | null = null,
  oomMiB?: number,
): Event => ({ kind: "exited", code, signal, oomMiB });

Deno.test("a new child starts at the first tick and is ready at its first good probe", () => {
  const h = new Harness();
  assert.deepEqual(h.kinds(h.at(0, { kind: "tick" })), ["spawn"]);
  assert.equal(h.child.phase, "starting");
  assert.equal(h.child.pid, 101);
  assert.deepEqual(h.kinds(h.at(50, { kind: "probe", answer: false })), []);
  assert.deepEqual(h.kinds(h.at(80, { kind: "probe", answer: true })), []);
  assert.equal(h.child.phase, "ready");
  assert.deepEqual(h.logs(), [], "a first start is not news");
});

Deno.test("a slow start is never given up while it runs: it is reported every few seconds", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  // Ten minutes of a start under a tiny CPU quota, checked once a second.
  h.run(600_000, 1_000, checked(false));
  assert.equal(h.child.phase, "starting");
  assert.ok(!h.actions.some((a) => a.kind === "kill" || a.kind === "give-up"));
  const waiting = h.logs("info");
  assert.equal(waiting.length, 600_000 / POLICY.reportEveryMs);
  assert.ok(waiting.every((m) => m === "waiting for worker 0 to answer"));
  h.at(600_001, { kind: "probe", answer: true });
  assert.equal(h.child.phase, "ready");
});

Deno.test("a child stopped while starting (SIGSTOP) is replaced after three checks, with one line", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(1_000, checked(true));
  h.at(2_000, checked(false)); // SIGCONT: counts again
  h.at(3_000, checked(true));
  h.at(4_000, checked(true));
  assert.deepEqual(h.kinds(h.at(5_000, checked(true))), [
    "log",
    "kill",
  ]);
  assert.deepEqual(h.logs("error"), [
    "worker 0 is stopped while starting; replacing it",
  ]);
  // Its death is expected: no second line, and a new one starts soon.
  assert.deepEqual(h.at(5_010, exited(0, "SIGKILL")), []);
  assert.equal(h.child.phase, "backoff");
  h.run(5_200, 10);
  assert.equal(h.child.phase, "starting");
  assert.equal(h.child.pid, 102);
});

Deno.test("START_TIMEOUT, when set, replaces a start that takes longer", () => {
  const h = new Harness({ ...POLICY, startTimeoutMs: 30_000 });
  h.at(0, { kind: "tick" });
  h.run(29_000, 1_000);
  assert.equal(h.logs("error").length, 0);
  h.run(30_000, 1_000);
  assert.deepEqual(h.logs("error"), [
    "worker 0 did not answer within START_TIMEOUT; replacing it",
  ]);
});

Deno.test("a ready child that fails three probes in a row is replaced; one good probe resets the count", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(10, { kind: "probe", answer: true });
  h.at(1_000, { kind: "probe", answer: false });
  h.at(2_000, { kind: "probe", answer: false });
  h.at(3_000, { kind: "probe", answer: true });
  h.at(4_000, { kind: "probe", answer: false });
  h.at(5_000, { kind: "probe", answer: false });
  assert.deepEqual(h.logs(), []);
  const actions = h.at(6_000, { kind: "probe", answer: false });
  assert.deepEqual(h.kinds(actions), ["log", "kill"]);
  assert.deepEqual(h.logs("error"), [
    "worker 0 is not answering; replacing it",
  ]);
  // More failed probes before it dies do not kill it twice.
  assert.deepEqual(h.at(6_500, { kind: "probe", answer: false }), []);
  h.at(6_600, exited(0, "SIGKILL"));
  h.run(7_000, 50);
  h.at(7_010, { kind: "probe", answer: true });
  assert.deepEqual(h.logs("info"), ["worker 0 restarted"]);
});

Deno.test("restarts back off, doubling to a cap; a steady child starts from the bottom again", () => {
  const h = new Harness({ ...POLICY, startAttempts: 100 });
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    h.at(h.now, { kind: "tick" });
    h.at(h.now + 1, exited(1));
    delays.push(h.child.delayMs);
    h.at(h.now + h.child.delayMs, { kind: "tick" });
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  // Ready for longer than steadyMs: the next failure starts at 100 again.
  h.at(h.now + 1, { kind: "probe", answer: true });
  h.at(h.now + POLICY.steadyMs, exited(1));
  assert.equal(h.child.delayMs, 100);
  assert.equal(h.child.attempts, 1);
});

Deno.test("a crash loop is told once, then ends the stack with its count", () => {
  const h = new Harness();
  for (let i = 0; i < POLICY.startAttempts; i++) {
    h.at(h.now + h.child.delayMs, { kind: "tick" });
    h.at(h.now + 5, exited(1));
  }
  assert.deepEqual(h.logs(), [
    "worker 0 exited with code 1; restarting",
    "worker 0 failed 5 times in a row (last: exited with code 1); stopping the stack",
  ]);
  assert.equal(h.actions.filter((a) => a.kind === "give-up").length, 1);
  assert.equal(h.child.phase, "gone");
  assert.deepEqual(h.at(h.now + 10_000, { kind: "tick" }), []);
});

Deno.test("a child killed by the kernel's OOM killer is logged as such, at level error", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(10, { kind: "probe", answer: true });
  h.at(20_000, exited(137, "SIGKILL", 256));
  const line = h.actions.find((a) => a.kind === "log");
  assert.deepEqual(line, {
    kind: "log",
    level: "error",
    msg: "worker 0 killed by the kernel: out of memory; restarting",
    fields: {
      worker: 0,
      code: 137,
      signal: "SIGKILL",
      pid: 101,
      memory_limit_mib: 256,
      delay_ms: 100,
    },
  });
});

Deno.test("stop: a running child is told to stop and is gone at its exit; nothing restarts", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(10, { kind: "probe", answer: true });
  assert.deepEqual(h.kinds(h.at(20, { kind: "stop" })), ["stop"]);
  assert.equal(h.child.phase, "stopping");
  assert.deepEqual(h.at(30, exited(0)), []);
  assert.equal(h.child.phase, "gone");
  assert.deepEqual(h.at(10_000, { kind: "tick" }), []);
  // A child waiting to restart has nothing to stop.
  const idle = new Harness();
  idle.at(0, { kind: "tick" });
  idle.at(5, exited(1));
  assert.deepEqual(idle.at(6, { kind: "stop" }), []);
  assert.equal(idle.child.phase, "gone");
});

Deno.test("a ready child's own process stopped three checks in a row is killed, once, by pid", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(50, { kind: "probe", answer: true });
  const killed = (at: number, stopped: number[]) =>
    h.at(at, checked(false, stopped)).flatMap((a) =>
      a.kind === "kill" && a.pid ? [a.pid] : []
    );
  assert.deepEqual(killed(1_000, [7, 8]), []);
  assert.deepEqual(killed(2_000, [7]), []); // 8 resumed (SIGCONT)
  assert.deepEqual(killed(3_000, [7, 8]), [7]);
  assert.deepEqual(killed(4_000, [7, 8]), []);
  assert.deepEqual(killed(5_000, [7, 8]), [8]);
  assert.deepEqual(killed(6_000, [7, 8]), [], "each is killed once");
  assert.deepEqual(h.logs("error"), [
    "worker 0 worker process is stopped; replacing it",
    "worker 0 worker process is stopped; replacing it",
  ]);
  assert.equal(h.child.phase, "ready", "the child itself lives on");
});

Deno.test("a pid that became another process between checks is counted afresh, never killed for the first one's stops", () => {
  const h = new Harness();
  h.at(0, { kind: "tick" });
  h.at(50, { kind: "probe", answer: true });
  const killed = (at: number, stopped: [number, number][]) =>
    h.at(at, checked(false, stopped)).flatMap((a) =>
      a.kind === "kill" && a.pid ? [a.pid] : []
    );
  assert.deepEqual(killed(1_000, [[7, 500]]), []);
  assert.deepEqual(killed(2_000, [[7, 500]]), []);
  // Process 7 died; a new process got pid 7, and is stopped too.
  assert.deepEqual(killed(3_000, [[7, 900]]), [], "not the same process");
  assert.deepEqual(killed(4_000, [[7, 900]]), []);
  assert.deepEqual(killed(5_000, [[7, 900]]), [7], "its own three checks");
  assert.equal(h.logs("error").length, 1);
});

Deno.test("a socket another process bound is caught at once, starting or ready", () => {
  for (const readyFirst of [false, true]) {
    const h = new Harness();
    h.at(0, { kind: "tick" });
    if (readyFirst) h.at(50, { kind: "probe", answer: true });
    const actions = h.at(100, { kind: "probe", answer: "foreign" });
    assert.deepEqual(h.kinds(actions), ["log", "kill"]);
    assert.deepEqual(h.logs("error"), [
      "worker 0 does not own its socket (another process bound it); replacing it",
    ]);
  }
});
