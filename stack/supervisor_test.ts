// The supervisor's shell with fake children, a fake machine and a fake
// clock: it starts groups, replaces a child that stops answering, kills a
// stopped process of a child's, gives up on a crash loop, and stops the
// last group first. (Its decisions: supervision_test.ts.)
import assert from "node:assert/strict";
import type { ChildSpec, ProcessState } from "./children.ts";
import { createLogger, type LogFields } from "../service/log.ts";
import { type Host, Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";

let nextPid = 1000;

/** A child that answers while `answering`, and exits when told. */
class FakeChild {
  spawned: number[] = [];
  answering = true;
  exitAtOnce?: number;
  #exit?: (status: Deno.CommandStatus) => void;

  constructor(readonly name: string, readonly journal: string[]) {}

  spec(watchChildren = false): ChildSpec {
    const end = (code: number, signal: Deno.Signal | null) =>
      this.#exit?.({ success: code === 0, code, signal });
    return {
      name: this.name,
      fields: { child: this.name },
      watchChildren,
      spawn: () => {
        const pid = ++nextPid;
        this.spawned.push(pid);
        const status = new Promise<Deno.CommandStatus>((r) => this.#exit = r);
        if (this.exitAtOnce !== undefined) end(this.exitAtOnce, null);
        return { pid, status } as unknown as Deno.ChildProcess;
      },
      probe: () => Promise.resolve(this.answering),
      stop: () => {
        this.journal.push(`stop ${this.name}`);
        end(0, null);
      },
      kill: () => end(137, "SIGKILL"),
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
  kill = (pid: number) => void this.killed.push(pid);
  oomKills = () => Promise.resolve(0);

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
  assert.deepEqual(journal, ["stop front", "stop worker"]);
});

Deno.test("the shell kills a child's own process that ps shows stopped, by pid", async () => {
  const { lines, machine, supervisor } = setup();
  const nginx = new FakeChild("nginx", []);
  const started = supervisor.start([nginx.spec(true)]);
  await machine.advance(100);
  assert.equal(await started, true);
  const master = nginx.spawned[0];
  machine.states = [
    { pid: 4242, ppid: master, stopped: true },
    { pid: 4243, ppid: master, stopped: false },
    { pid: 4244, ppid: 1, stopped: true },
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
  const spec = { ...stubborn.spec(), stop: () => {} };
  const started = supervisor.start([spec]);
  await machine.advance(100);
  assert.equal(await started, true);
  supervisor.stop("SIGTERM", 0, 12_000);
  await machine.advance(11_000);
  assert.ok(!lines.some((l) => /too long/.test(String(l.msg))));
  await machine.advance(1_000);
  assert.equal(await supervisor.done, 1);
  assert.ok(lines.some((l) => l.msg === "draining took too long; exiting"));
});
