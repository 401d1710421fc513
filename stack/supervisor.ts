/**
 * The supervisor's shell: it feeds what happens to each child to `step`
 * (supervision.ts) and carries out the actions it returns, on a
 * {@linkcode Host}'s clock, /proc and signals (a test's fakes). Children
 * start in groups (the workers, then nginx) and stop last group first.
 *
 * @module
 */
import { DEFAULTS } from "../service/config.ts";
import type { Logger } from "../service/log.ts";
import type { ChildSpec } from "./children.ts";
import type { ProcessState } from "./kernel.ts";
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
  /** Its process, until its exit is seen: its pid may then be another's. */
  process?: Deno.ChildProcess;
}

/** What the shell needs from the machine; the tests' fakes stand in. */
export interface Host {
  /** The clock, in milliseconds. */
  now(): number;
  /** Resolves after `ms` of that clock. */
  sleep(ms: number): Promise<void>;
  /** The state of these processes and of the children of `parents`. */
  processStates(pids: number[], parents: number[]): Promise<ProcessState[]>;
  /** SIGKILLs a process (negative: a process group) it did not spawn. */
  kill(pid: number): Promise<void>;
  /**
   * After a child's SIGKILL: the memory limit in MiB if the kernel's OOM
   * killer sent it (its count of kills grew since last asked).
   */
  oomKilled(): Promise<number | undefined>;
}

// A starting child is probed every 50 ms; a ready one, and /proc, each second.
const STARTING_MS = 50;
const SECOND_MS = 1000;
// Past the workers' own drain, a stop is made hard.
const DRAIN_MS = (DEFAULTS.drainSeconds + 2) * 1000;

// Deno throws rather than signal a child it has reaped, whose pid may be
// another process's by then.
function signal(process: Deno.ChildProcess | undefined, sig: Deno.Signal) {
  try {
    process?.kill(sig);
  } catch {
    // Reaped.
  }
}

/** Runs children by the decisions of `supervision.ts`. */
export class Supervisor {
  #groups: Slot[][] = [];
  #stopping = false;
  #said = new Set<string>();
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
    const slots = specs.map((spec) => ({
      spec,
      child: newChild(spec.name, spec.fields, this.host.now()),
    }));
    this.#groups.push(slots);
    return (await Promise.all(slots.map((s) => this.#watch(s)))).every(Boolean);
  }

  // The host's answer, or none when its program fails: one warning says
  // what the stack, which keeps serving, cannot do then.
  async #ask<T>(answer: Promise<T>, what: string): Promise<T | undefined> {
    try {
      return await answer;
    } catch (err) {
      if (!this.#said.has(what)) this.logger.warn(what, { error: `${err}` });
      this.#said.add(what);
    }
  }

  #apply(slot: Slot, event: Event): void {
    const now = this.host.now();
    const [child, actions] = step(slot.child, event, now, this.policy);
    slot.child = child;
    for (const action of actions) this.#act(slot, action);
  }

  #act(slot: Slot, action: Action): void {
    switch (action.kind) {
      case "spawn":
        return this.#spawn(slot);
      case "kill":
        if (action.pid === undefined) return this.#kill(slot);
        return this.#killPid(action.pid);
      case "stop":
        return signal(slot.process, slot.spec.stopSignal);
      case "log":
        return this.logger[action.level](action.msg, action.fields);
      case "give-up":
        this.stop(undefined, 1);
    }
  }

  #killPid(pid: number): void {
    void this.#ask(this.host.kill(pid), "nginx's processes cannot be killed");
  }

  // A child still running, and nginx's worker processes: its group, whose
  // id stays theirs while one lives.
  #kill(slot: Slot): void {
    if (slot.process && slot.spec.group) this.#killPid(-slot.process.pid);
    signal(slot.process, "SIGKILL");
  }

  #spawn(slot: Slot): void {
    let process: Deno.ChildProcess;
    try {
      process = slot.spec.spawn();
    } catch (err) {
      const fields = { ...slot.spec.fields, error: String(err) };
      this.logger.error(`${slot.spec.name} could not start`, fields);
      this.stop(undefined, 1);
      return;
    }
    slot.process = process;
    this.#apply(slot, { kind: "spawned", pid: process.pid });
    process.status.then(async ({ code, signal }) => {
      slot.process = undefined;
      // nginx's worker processes die with it, at once: while one of them
      // lives, its group's id is no other process's pid.
      if (slot.spec.group) this.#killPid(-process.pid);
      const oomMiB = signal === "SIGKILL"
        ? await this.#ask(this.host.oomKilled(), "OOM kills cannot be read")
        : undefined;
      this.#apply(slot, { kind: "exited", code, signal, oomMiB });
    });
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
          await this.host.sleep(phase === "ready" ? SECOND_MS : STARTING_MS);
          const answer = pid === undefined ? false : await slot.spec.probe(pid);
          if (slot.child.pid === pid && slot.child.phase === phase) {
            this.#apply(slot, { kind: "probe", answer });
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

  // Once a second: the starting children and nginx's workers /proc shows.
  async #check(): Promise<void> {
    while (!this.#stopping) {
      await this.host.sleep(SECOND_MS);
      const watched = this.#groups.flat().filter(({ child, spec }) =>
        child.pid !== undefined &&
        (child.phase === "starting" || (child.phase === "ready" && spec.group))
      );
      const pids = (phase: string) =>
        watched.filter((s) => s.child.phase === phase).map((s) => s.child.pid!);
      const states = await this.#ask(
        this.host.processStates(pids("starting"), pids("ready")),
        "stopped processes cannot be caught: /proc cannot be read",
      ) ?? [];
      for (const slot of watched) {
        const mine = (p: ProcessState) => p.stopped && p.pid === slot.child.pid;
        const its = (p: ProcessState) => p.stopped && p.ppid === slot.child.pid;
        this.#apply(slot, {
          kind: "checked",
          stopped: states.some(mine),
          stoppedChildren: states.filter(its),
        });
      }
    }
  }

  /**
   * Stops every child, the last group first (nginx drains before the
   * workers stop); `done` then resolves with `code`. A stop that takes
   * longer than `drainMs` is made hard, and the code is 1.
   */
  async stop(reason: string | undefined, code = 0, drainMs = DRAIN_MS) {
    if (this.#stopping) return;
    this.#stopping = true;
    if (reason) this.logger.info("shutting down", { signal: reason });
    let drained = false;
    this.host.sleep(drainMs).then(() => {
      if (drained) return;
      this.logger.error("draining took too long; exiting");
      for (const slot of this.#groups.flat()) this.#kill(slot);
      this.#finish(1);
    });
    for (const group of this.#groups.toReversed()) {
      for (const slot of group) this.#apply(slot, { kind: "stop" });
      await Promise.all(group.map((s) => s.process?.status));
    }
    drained = true;
    this.#finish(code);
  }
}
