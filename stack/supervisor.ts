/**
 * The supervisor's shell: it feeds what happens to each child (spawned,
 * probed, checked with `ps`, exited, the clock) to `step` in
 * `supervision.ts` and carries out the actions it returns. Time, sleep and
 * signals come from a {@linkcode Host}, so tests run it on a fake clock.
 *
 * Children start in groups (the workers, then nginx) and stop in the
 * reverse order: nginx drains first, then the workers.
 *
 * @module
 */
import type { Logger } from "../service/log.ts";
import type { ChildSpec, ProcessState } from "./children.ts";
import {
  type Action,
  type Child,
  type Event,
  newChild,
  POLICY,
  type Policy,
  step,
} from "./supervision.ts";

interface Slot {
  spec: ChildSpec;
  child: Child;
  process?: Deno.ChildProcess;
  group: number;
}

/** What the shell needs from the machine; the tests' fakes stand in. */
export interface Host {
  /** The clock, in milliseconds. */
  now(): number;
  /** Resolves after `ms` of that clock. */
  sleep(ms: number): Promise<void>;
  /** The state of these processes and of the children of `parents`. */
  processStates(pids: number[], parents: number[]): Promise<ProcessState[]>;
  /** Kills a process the supervisor did not spawn (SIGKILL). */
  kill(pid: number): void;
  /** Processes the kernel killed for the memory limit so far. */
  oomKills(): Promise<number>;
  /** That limit in MiB, if any. */
  memoryLimitMiB?: number;
}

// How often a starting child is probed, a ready one, and how often `ps`
// looks for stopped processes.
const STARTING_PROBE_MS = 50;
const READY_PROBE_MS = 1000;
const CHECK_MS = 1000;

/** Runs children by the decisions of `supervision.ts`. */
export class Supervisor {
  #slots: Slot[] = [];
  #groups = 0;
  #stopping = false;
  #oomSeen = 0;
  #finish!: (code: number) => void;
  /** Resolves with the stack's exit code once every child is gone. */
  readonly done: Promise<number> = new Promise((r) => this.#finish = r);

  /** A supervisor that logs to `logger`. */
  constructor(
    readonly logger: Logger,
    readonly host: Host,
    readonly policy: Policy = POLICY,
  ) {
    this.#check();
  }

  /** Starts a group of children; true once every one of them is ready. */
  async start(specs: ChildSpec[]): Promise<boolean> {
    if (this.#stopping) return false;
    this.#oomSeen = await this.host.oomKills();
    const group = this.#groups++;
    const slots = specs.map((spec) => ({
      spec,
      group,
      child: newChild(spec.name, spec.fields, this.host.now()),
    }));
    this.#slots.push(...slots);
    return (await Promise.all(slots.map((s) => this.#watch(s)))).every(Boolean);
  }

  #apply(slot: Slot, event: Event): void {
    const [child, actions] = step(
      slot.child,
      event,
      this.host.now(),
      this.policy,
    );
    slot.child = child;
    for (const action of actions) this.#act(slot, action);
  }

  #act(slot: Slot, action: Action): void {
    switch (action.kind) {
      case "spawn":
        return this.#spawn(slot);
      case "kill":
        if (slot.process) slot.spec.kill(slot.process);
        return;
      case "stop":
        if (slot.process) slot.spec.stop(slot.process);
        return;
      case "kill-pid":
        return this.host.kill(action.pid);
      case "log":
        return this.logger[action.level](action.msg, action.fields);
      case "give-up":
        this.logger.error(action.msg, action.fields);
        this.stop(undefined, 1);
    }
  }

  #spawn(slot: Slot): void {
    let process: Deno.ChildProcess;
    try {
      process = slot.spec.spawn();
    } catch (err) {
      this.logger.error(`${slot.spec.name} could not start`, {
        ...slot.spec.fields,
        error: String(err),
      });
      this.stop(undefined, 1);
      return;
    }
    slot.process = process;
    this.#apply(slot, { kind: "spawned", pid: process.pid });
    process.status.then(async ({ code, signal }) => {
      // What it started dies with it (nginx's worker processes).
      slot.spec.kill(process);
      const oom = signal === "SIGKILL" && await this.#oomGrew()
        ? { limitMiB: this.host.memoryLimitMiB ?? 0 }
        : undefined;
      if (slot.process === process) {
        this.#apply(slot, { kind: "exited", code, signal, oom });
      }
    });
  }

  async #oomGrew(): Promise<boolean> {
    const kills = await this.host.oomKills();
    const grew = kills > this.#oomSeen;
    this.#oomSeen = kills;
    return grew;
  }

  // One child's life, ticks and probes, until it is gone; resolves once it
  // is first ready (true) or the stack stops first (false), and goes on.
  #watch(slot: Slot): Promise<boolean> {
    const { promise, resolve } = Promise.withResolvers<boolean>();
    (async () => {
      this.#apply(slot, { kind: "tick" });
      while (slot.child.phase !== "gone") {
        const { phase, since, delayMs, pid } = slot.child;
        if (phase === "backoff") {
          await this.host.sleep(Math.max(0, since + delayMs - this.host.now()));
        } else if (phase === "starting" || phase === "ready") {
          await this.host.sleep(
            phase === "ready" ? READY_PROBE_MS : STARTING_PROBE_MS,
          );
          const answer = pid === undefined ? false : await slot.spec.probe(pid);
          if (slot.child.pid === pid && slot.child.phase === phase) {
            this.#apply(slot, {
              kind: "probe",
              ok: answer === true,
              foreign: answer === "foreign",
            });
          }
        } else {
          await slot.process?.status;
          await this.host.sleep(10);
        }
        this.#apply(slot, { kind: "tick" });
        if (slot.child.phase === "ready") resolve(true);
        if (this.#stopping) resolve(false);
      }
      resolve(false);
    })();
    return promise;
  }

  // Once a second: which starting children, and which of a ready child's
  // own processes (nginx's worker processes), the kernel shows stopped.
  async #check(): Promise<void> {
    while (!this.#stopping) {
      await this.host.sleep(CHECK_MS);
      const watched = this.#slots.filter(({ child, spec }) =>
        child.pid !== undefined &&
        (child.phase === "starting" ||
          (child.phase === "ready" && spec.watchChildren))
      );
      const pid = (s: Slot) => s.child.pid!;
      const states = await this.host.processStates(
        watched.filter((s) => s.child.phase === "starting").map(pid),
        watched.filter((s) => s.child.phase === "ready").map(pid),
      );
      for (const slot of watched) {
        const own = states.find((p) => p.pid === pid(slot));
        this.#apply(slot, {
          kind: "checked",
          stopped: own?.stopped ?? false,
          stoppedChildren: states.filter((p) =>
            p.ppid === pid(slot) && p.stopped
          ).map((p) => p.pid),
        });
      }
    }
  }

  /**
   * Stops every child, the last group first (nginx drains before the
   * workers stop); `done` then resolves with `code`. A stop that takes
   * longer than `drainMs` is made hard, and the code is 1.
   */
  async stop(reason: string | undefined, code = 0, drainMs = 12_000) {
    if (this.#stopping) return;
    this.#stopping = true;
    if (reason) this.logger.info("shutting down", { signal: reason });
    let drained = false;
    this.host.sleep(drainMs).then(() => {
      if (drained) return;
      this.logger.error("draining took too long; exiting");
      for (const s of this.#slots) if (s.process) s.spec.kill(s.process);
      this.#finish(1);
    });
    for (let g = this.#groups - 1; g >= 0; g--) {
      const group = this.#slots.filter((s) => s.group === g);
      for (const slot of group) this.#apply(slot, { kind: "stop" });
      await Promise.all(group.map((s) => s.process?.status));
    }
    drained = true;
    this.#finish(code);
  }
}
