// The supervisor's shell with fake children, a fake machine and a fake
// clock: it starts groups, replaces a child that stops answering, kills a
// stopped process of a child's, gives up on a crash loop, and stops the
// last group first. (Its decisions: supervision_test.ts.)
import assert from "node:assert/strict";
import type { ChildSpec } from "./children.ts";
import type { ProcessState } from "./kernel.ts";
import { createLogger, type LogFields } from "../service/log.ts";
import { type Host, Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";

let nextPid = 1000;

/**
 * A child that answers while `answering` and exits when signalled (unless
 * `stubborn`, to its stop signal); every signal it is sent is journalled,
 * those sent after its exit too.
 */
class FakeChild {
  spawned: number[] = [];
  answering = true;
  stubborn = false;
  exitAtOnce?: number;

  constructor(readonly name: string, readonly journal: string[]) {}

  spec(group = false): ChildSpec {
    return {
      name: this.name,
      fields: { child: this.name },
      group,
      stopSignal: "SIGTERM",
      spawn: () => {
        const pid = ++nextPid;
        this.spawned.push(pid);
        let exit!: (status: Deno.CommandStatus) => void;
        const status = new Promise<Deno.CommandStatus>((r) => exit = r);
        const end = (code: number, signal: Deno.Signal | null) =>
          exit({ success: code === 0, code, signal });
        if (this.exitAtOnce !== undefined) end(this.exitAtOnce, null);
        const kill = (signal: Deno.Signal) => {
          this.journal.push(`${signal} ${this.name}`);
          if (signal === "SIGKILL") end(137, signal);
          else if (!this.stubborn) end(0, null);
        };
        return { pid, status, kill } as unknown as Deno.ChildProcess;
      },
      probe: () => Promise.resolve(this.answering),
    };
  }
}

/** A machine whose clock moves only when the test says. */
class FakeMachine implements Host {
  time = 0;
  killed: number[] = [];
  states: ProcessState[] = [];
  #timers: { at: number; resolve: () => void }[] = [];

  now = () => this.time;
  sleep = (ms: number) =>
    new Promise<void>((resolve) =>
      this.#timers.push({ at: this.time + ms, resolve })
    );
  processStates = () => Promise.resolve(this.states);
  kill = (pid: number) => {
    this.killed.push(pid);
    return Promise.resolve();
  };
  oomKilled = (): Promise<number | undefined> => Promise.resolve(undefined);

  /** Moves the clock by `ms`, firing each timer in turn as it comes due. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    while (true) {
      // What the last timer set off runs before the next one fires.
      await new Promise((r) => setTimeout(r, 0));
      this.#timers.sort((a, b) => a.at - b.at);
      if (!this.#timers.length || this.#timers[0].at > until) break;
      const next = this.#timers.shift()!;
      this.time = next.at;
      next.resolve();
    }
    this.time = until;
  }
}

function setup() {
  const lines: LogFields[] = [];
  const machine = new FakeMachine();
  const logger = createLogger("debug", {}, (entry) => lines.push(entry));
  return { lines, machine, supervisor: new Supervisor(logger, machine) };
}

Deno.test("the shell replaces a child that stops answering within four seconds, and stops the last group first", async () => {
  const { lines, machine, supervisor } = setup();
  const journal: string[] = [];
  const workers = new FakeChild("worker", journal);
  const front = new FakeChild("front", journal);
  const first = supervisor.start([workers.spec()]);
  await machine.advance(100);
  assert.equal(await first, true);
  const second = supervisor.start([front.spec()]);
  await machine.advance(100);
  assert.equal(await second, true);
  workers.answering = false;
  await machine.advance(3_000);
  assert.equal(workers.spawned.length, 1, "two failed probes are not enough");
  await machine.advance(1_000);
  assert.equal(workers.spawned.length, 2, "a replacement was spawned");
  assert.ok(
    lines.some((l) => l.msg === "worker is not answering; replacing it"),
  );
  workers.answering = true;
  const stopped = supervisor.stop("SIGTERM");
  await machine.advance(100);
  await stopped;
  assert.equal(await supervisor.done, 0);
  assert.deepEqual(journal, [
    "SIGKILL worker", // the replacement
    "SIGTERM front",
    "SIGTERM worker",
  ]);
});

Deno.test("the shell kills a child's own process that /proc shows stopped, by pid", async () => {
  const { lines, machine, supervisor } = setup();
  const nginx = new FakeChild("nginx", []);
  const started = supervisor.start([nginx.spec(true)]);
  await machine.advance(100);
  assert.equal(await started, true);
  const master = nginx.spawned[0];
  machine.states = [
    { pid: 4242, ppid: master, stopped: true, start: 9 },
    { pid: 4243, ppid: master, stopped: false, start: 9 },
    { pid: 4244, ppid: 1, stopped: true, start: 9 },
  ];
  await machine.advance(2_500);
  assert.deepEqual(machine.killed, []);
  await machine.advance(1_000);
  assert.deepEqual(machine.killed, [4242]);
  assert.ok(
    lines.some((l) => l.pid === 4242 && /is stopped/.test(String(l.msg))),
  );
  supervisor.stop(undefined);
  await machine.advance(100);
  assert.equal(await supervisor.done, 0);
});

Deno.test("the shell gives up on a child that keeps exiting: start is false, exit code 1", async () => {
  const { lines, machine, supervisor } = setup();
  const crashing = new FakeChild("worker", []);
  crashing.answering = false;
  crashing.exitAtOnce = 1;
  const started = supervisor.start([crashing.spec()]);
  await machine.advance(10_000);
  assert.equal(await started, false);
  assert.equal(await supervisor.done, 1);
  assert.equal(crashing.spawned.length, POLICY.startAttempts);
  const messages = lines.map((l) => l.msg);
  assert.deepEqual(messages.filter((m) => /worker/.test(String(m))), [
    "worker exited with code 1; restarting",
    "worker failed 5 times in a row (last: exited with code 1); stopping the stack",
  ]);
});

Deno.test("a drain longer than its budget is made hard: every child killed, exit code 1", async () => {
  const { lines, machine, supervisor } = setup();
  const stubborn = new FakeChild("worker", []);
  stubborn.stubborn = true;
  const started = supervisor.start([stubborn.spec()]);
  await machine.advance(100);
  assert.equal(await started, true);
  supervisor.stop("SIGTERM", 0, 12_000);
  await machine.advance(11_000);
  assert.ok(!lines.some((l) => /too long/.test(String(l.msg))));
  await machine.advance(1_000);
  assert.equal(await supervisor.done, 1);
  assert.ok(lines.some((l) => l.msg === "draining took too long; exiting"));
});

Deno.test("a child whose exit was seen is never signalled again: a hard stop kills only what still runs", async () => {
  const { machine, supervisor } = setup();
  const journal: string[] = [];
  const worker = new FakeChild("worker", journal);
  worker.stubborn = true;
  const front = new FakeChild("front", journal);
  await Promise.all([
    supervisor.start([worker.spec()]).then(() =>
      supervisor.start([front.spec(true)])
    ),
    machine.advance(200),
  ]);
  const master = front.spawned[0];
  supervisor.stop("SIGTERM", 0, 12_000);
  await machine.advance(1_000);
  // Its exit kills its group at once, while the group's id is still its.
  assert.deepEqual(machine.killed, [-master]);
  await machine.advance(11_000);
  assert.equal(await supervisor.done, 1);
  // Twelve seconds on, its pid may be a stranger's: not signalled again.
  assert.deepEqual(machine.killed, [-master]);
  assert.deepEqual(journal, [
    "SIGTERM front",
    "SIGTERM worker",
    "SIGKILL worker",
  ]);
});

Deno.test("cat and kill failing (missing, hung, broken): children still start and restart, and each failure is said once", async () => {
  const { lines, machine, supervisor } = setup();
  const broken = () => Promise.reject(new Error("Failed to spawn 'cat'"));
  machine.processStates = broken;
  machine.oomKilled = broken;
  machine.kill = () => Promise.reject(new Error("kill: no answer"));
  const worker = new FakeChild("worker", []);
  const front = new FakeChild("front", []);
  const started = supervisor.start([worker.spec()]);
  await machine.advance(200);
  assert.equal(await started, true);
  const second = supervisor.start([front.spec(true)]);
  await machine.advance(200);
  assert.equal(await second, true);
  machine.states = [];
  // nginx's group cannot be killed, and memory.events not read: still the
  // killed child restarts.
  for (let i = 0; i < 3; i++) {
    front.answering = false;
    await machine.advance(4_000);
    front.answering = true;
    await machine.advance(10_000);
  }
  assert.equal(front.spawned.length, 4);
  assert.equal(worker.spawned.length, 1);
  const warnings = lines.filter((l) => l.level === "warn").map((l) => l.msg);
  assert.deepEqual(warnings.sort(), [
    "OOM kills cannot be read",
    "nginx's processes cannot be killed",
    "stopped processes cannot be caught: /proc cannot be read",
  ]);
  supervisor.stop(undefined);
  await machine.advance(100);
  assert.equal(await supervisor.done, 0);
});
