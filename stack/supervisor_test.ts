// The supervisor's shell with fake children and a fake machine: it starts
// groups, replaces a child that stops answering, gives up on a crash loop,
// and stops the last group first. (Its decisions: supervision_test.ts.)
import assert from "node:assert/strict";
import type { ChildSpec } from "./children.ts";
import { createLogger, type LogFields } from "../service/log.ts";
import { Supervisor } from "./supervisor.ts";
import { POLICY } from "./supervision.ts";

let nextPid = 1000;

/** A child that answers while `answering`, and exits when told. */
class FakeChild {
  spawned: number[] = [];
  answering = true;
  exitAtOnce?: number;
  #exit?: (status: Deno.CommandStatus) => void;

  constructor(readonly name: string, readonly journal: string[]) {}

  spec(): ChildSpec {
    const end = (code: number, signal: Deno.Signal | null) =>
      this.#exit?.({ success: code === 0, code, signal });
    return {
      name: this.name,
      fields: { child: this.name },
      spawn: () => {
        const pid = ++nextPid;
        this.spawned.push(pid);
        const status = new Promise<Deno.CommandStatus>((r) => this.#exit = r);
        if (this.exitAtOnce !== undefined) {
          setTimeout(() => end(this.exitAtOnce!, null), 5);
        }
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

function quietLogger(lines: LogFields[]) {
  return createLogger("debug", {}, (entry) => lines.push(entry));
}

const machine = {
  processStates: () => Promise.resolve([]),
  oomKills: () => Promise.resolve(0),
};

Deno.test("the shell replaces a child that stops answering, and stops the last group first", async () => {
  const journal: string[] = [];
  const lines: LogFields[] = [];
  const workers = new FakeChild("worker", journal);
  const front = new FakeChild("front", journal);
  const supervisor = new Supervisor(quietLogger(lines), machine, POLICY);
  assert.equal(await supervisor.start([workers.spec()]), true);
  assert.equal(await supervisor.start([front.spec()]), true);
  workers.answering = false;
  const deadline = Date.now() + 15_000;
  while (workers.spawned.length < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(workers.spawned.length, 2, "a replacement was spawned");
  assert.ok(
    lines.some((l) => l.msg === "worker is not answering; replacing it"),
  );
  workers.answering = true;
  await supervisor.stop("SIGTERM");
  assert.equal(await supervisor.done, 0);
  assert.deepEqual(journal, ["stop front", "stop worker"]);
});

Deno.test("the shell gives up on a child that keeps exiting: start is false, exit code 1", async () => {
  const lines: LogFields[] = [];
  const crashing = new FakeChild("worker", []);
  crashing.answering = false;
  crashing.exitAtOnce = 1;
  const supervisor = new Supervisor(quietLogger(lines), machine, POLICY);
  assert.equal(await supervisor.start([crashing.spec()]), false);
  assert.equal(await supervisor.done, 1);
  assert.equal(crashing.spawned.length, POLICY.startAttempts);
  const messages = lines.map((l) => l.msg);
  assert.deepEqual(messages.filter((m) => /worker/.test(String(m))), [
    "worker exited with code 1; restarting",
    "worker failed 5 times in a row (last: exited with code 1); stopping the stack",
  ]);
});
