/**
 * The supervisor's shell: it feeds what happens to each child (spawned,
 * probed, checked with `ps`, exited, the clock) to the decisions in
 * `supervision.ts` and carries out what they say (spawn, kill, stop, log,
 * give up). It decides nothing itself.
 *
 * Children start in groups (the workers, then nginx) and stop in the
 * reverse order: nginx drains first, then the workers.
 *
 * @module
 */
import type { Logger } from "../service/log.ts";
import { type ChildSpec, killPid, type ProcessState } from "./children.ts";
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
  /** The state of these processes and of the children of `parents`. */
  processStates(pids: number[], parents: number[]): Promise<ProcessState[]>;
  /** Processes the kernel killed for the memory limit so far. */
  oomKills(): Promise<number>;
  /** That limit in MiB, if any. */
  memoryLimitMiB?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  #nginxStrikes = new Map<number, number>();

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
      child: newChild(spec.name, spec.fields, Date.now()),
    }));
    this.#slots.push(...slots);
    const ready = slots.map((slot) =>
      new Promise<boolean>((tell) => this.#watch(slot, tell))
    );
    return (await Promise.all(ready)).every(Boolean);
  }

  #apply(slot: Slot, event: Event): void {
    const [child, actions] = step(slot.child, event, Date.now(), this.policy);
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
      case "log":
        return this.logger[action.level](action.msg, action.fields);
      case "give-up":
        this.logger.error(action.msg, action.fields);
        this.stop(undefined, 1);
        return;
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

  // One child's life, ticks and probes, until it is gone; `ready` is told
  // once whether it ever became ready (false: the stack is stopping).
  async #watch(slot: Slot, ready: (ok: boolean) => void): Promise<void> {
    this.#apply(slot, { kind: "tick" });
    let told = false;
    const tell = (ok: boolean) => {
      if (!told) ready(ok);
      told = true;
    };
    while (slot.child.phase !== "gone") {
      const { phase, since, delayMs, pid } = slot.child;
      if (phase === "backoff") {
        await sleep(Math.max(0, since + delayMs - Date.now()));
      } else if (phase === "starting" || phase === "ready") {
        await sleep(phase === "ready" ? READY_PROBE_MS : STARTING_PROBE_MS);
        const ok = pid !== undefined && await slot.spec.probe(pid);
        if (slot.child.pid === pid && slot.child.phase === phase) {
          this.#apply(slot, { kind: "probe", ok });
        }
      } else {
        await slot.process?.status;
        await sleep(10);
      }
      this.#apply(slot, { kind: "tick" });
      if (slot.child.phase === "ready") tell(true);
      if (this.#stopping) tell(false);
    }
    tell(false);
  }

  // Once a second: which starting children, and which of nginx's worker
  // processes, the kernel shows stopped.
  async #check(): Promise<void> {
    while (!this.#stopping) {
      await sleep(CHECK_MS);
      const starting = this.#slots.filter((s) =>
        s.child.phase === "starting" && s.child.pid !== undefined
      );
      const parents = this.#slots.filter((s) =>
        s.spec.watchChildren && s.child.phase === "ready"
      ).map((s) => s.child.pid!);
      const states = await this.host.processStates(
        starting.map((s) => s.child.pid!),
        parents,
      );
      for (const slot of starting) {
        const state = states.find((p) => p.pid === slot.child.pid);
        if (state) {
          this.#apply(slot, { kind: "checked", stopped: state.stopped });
        }
      }
      this.#nginxWorkers(states.filter((p) => parents.includes(p.ppid)));
    }
  }

  // nginx's master restarts a worker process that dies: one that is
  // stopped is killed so that it does.
  #nginxWorkers(workers: ProcessState[]): void {
    const strikes = new Map<number, number>();
    for (const w of workers) {
      if (!w.stopped) continue;
      const n = (this.#nginxStrikes.get(w.pid) ?? 0) + 1;
      strikes.set(w.pid, n);
      if (n === this.policy.stoppedChecks) {
        this.logger.error("nginx worker process is stopped; replacing it", {
          component: "nginx",
          pid: w.pid,
        });
        killPid(w.pid);
      }
    }
    this.#nginxStrikes = strikes;
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
    const hard = setTimeout(() => {
      this.logger.error("draining took too long; exiting");
      for (const s of this.#slots) if (s.process) s.spec.kill(s.process);
      this.#finish(1);
    }, drainMs);
    for (let g = this.#groups - 1; g >= 0; g--) {
      const group = this.#slots.filter((s) => s.group === g);
      for (const slot of group) this.#apply(slot, { kind: "stop" });
      await Promise.all(group.map((s) => s.process?.status));
    }
    clearTimeout(hard);
    this.#finish(code);
  }
}
