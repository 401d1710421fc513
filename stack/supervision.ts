/**
 * The supervisor's decisions, one pure function ({@linkcode step}): what a
 * child's state becomes on an event, and what the shell (supervisor.ts)
 * must do about it. nginx and every worker live one life:
 *
 *     backoff ──tick──▶ starting ──probe ok──▶ ready
 *        ▲                 │ stopped (T), START_TIMEOUT,   │ failed probes,
 *        │                 ▼ a socket not its own          ▼ a socket not its own
 *        └──────exited── (killed) ◀────────────────────────┘
 *     any ──stop──▶ stopping ──exited──▶ gone
 *
 * A start has no deadline unless START_TIMEOUT is set: a slow start is
 * reported, a stopped one replaced. Restarts back off; a crash loop ends
 * the stack, told once with its count.
 *
 * @module
 */
import type { LogLevel } from "../service/config.ts";
import type { LogFields } from "../service/log.ts";
import type { ProcessState } from "./kernel.ts";

/** The numbers that shape the decisions: a hung child goes within seconds. */
export const POLICY = {
  /** Failed probes in a row after which a ready child is replaced. */
  probeFailures: 3,
  /** Checks in a row that see a starting child stopped before it is replaced. */
  stoppedChecks: 3,
  /** First and largest delay before a restart, in ms. */
  backoffMs: [100, 5_000],
  /** Ready this long (ms), a child's earlier failures are forgotten. */
  steadyMs: 10_000,
  /** Starts in a row that end before steady, after which the stack gives up. */
  startAttempts: 5,
  /** How long a start may take, in ms; 0: as long as it makes progress. */
  startTimeoutMs: 0,
  /** How often a slow start is reported, in ms. */
  reportEveryMs: 5_000,
};

/** The shape of {@linkcode POLICY}, for other numbers (tests, START_TIMEOUT). */
export type Policy = typeof POLICY;

/** One child's state. */
export interface Child {
  /** Its fields in every log line: `{worker: 0}` or `{component: "nginx"}`. */
  fields: LogFields;
  /** Its name in messages: "worker 0", "nginx". */
  name: string;
  /** Where it is. */
  phase: "backoff" | "starting" | "ready" | "stopping" | "gone";
  /** When it entered that phase. */
  since: number;
  /** The running process, once spawned. */
  pid?: number;
  /** Failed probes in a row (ready) or checks that saw it stopped (starting). */
  strikes: number;
  /** Checks in a row that saw each of its own processes stopped. */
  stoppedChildren: Record<string, number>;
  /** Starts in a row that ended before the child was steady. */
  attempts: number;
  /** The next restart's delay. */
  delayMs: number;
  /** Why the supervisor killed it, if it did. */
  killedFor?: string;
  /** When its slow start was last reported, if it was. */
  reportedAt?: number;
}

/** What happened to a child, or the clock moving on. */
export type Event =
  | { kind: "spawned"; pid: number }
  /** `"foreign"`: its socket is not the one it bound (another process's). */
  | { kind: "probe"; answer: boolean | "foreign" }
  /**
   * What /proc shows: it is stopped, and which of its own processes are,
   * each by pid and start time (a pid may be another process's later).
   */
  | { kind: "checked"; stopped: boolean; stoppedChildren: ProcessState[] }
  /** `oomMiB`: killed by the kernel for the cgroup's memory limit. */
  | { kind: "exited"; code: number; signal: string | null; oomMiB?: number }
  | { kind: "tick" }
  | { kind: "stop" };

/** What the shell must do. */
export type Action =
  | { kind: "spawn" }
  /** Kill the child, or only its own process `pid` (it replaces that). */
  | { kind: "kill"; pid?: number }
  | { kind: "stop" }
  | { kind: "log"; level: LogLevel; msg: string; fields: LogFields }
  /** Stop the stack, exit code 1: a child cannot be kept running. */
  | { kind: "give-up" };

/** A child that has not started yet: its first start is due now. */
export function newChild(name: string, fields: LogFields, now: number): Child {
  return {
    name,
    fields,
    phase: "backoff",
    since: now,
    strikes: 0,
    stoppedChildren: {},
    attempts: 0,
    delayMs: 0,
  };
}

/** A child's next state, and the shell's actions. */
export type Step = [Child, Action[]];
type Exited = Extract<Event, { kind: "exited" }>;

const log = (c: Child, level: LogLevel, msg: string, fields = {}): Action => ({
  kind: "log",
  level,
  msg,
  fields: { ...c.fields, pid: c.pid, ...fields },
});

// Kills a child once, saying why; its exit is then expected.
function replace(child: Child, why: string, fields = {}): Step {
  if (child.killedFor) return [child, []];
  return [{ ...child, killedFor: why }, [
    log(child, "error", `${child.name} ${why}; replacing it`, fields),
    { kind: "kill" },
  ]];
}

function onStarting(c: Child, e: Event, now: number, p: Policy): Step {
  if (e.kind === "probe" && e.answer) {
    return [
      { ...c, phase: "ready", since: now, strikes: 0 },
      c.attempts > 0 ? [log(c, "info", `${c.name} restarted`)] : [],
    ];
  }
  if (e.kind === "checked") {
    const strikes = e.stopped ? c.strikes + 1 : 0;
    if (strikes >= p.stoppedChecks) {
      return replace(c, "is stopped while starting", { state: "T" });
    }
    return [{ ...c, strikes }, []];
  }
  if (e.kind !== "tick" || c.killedFor) return [c, []];
  const waited = { waited_ms: now - c.since };
  if (p.startTimeoutMs > 0 && waited.waited_ms >= p.startTimeoutMs) {
    return replace(c, "did not answer within START_TIMEOUT", waited);
  }
  if (now - (c.reportedAt ?? c.since) < p.reportEveryMs) return [c, []];
  return [{ ...c, reportedAt: now }, [
    log(c, "info", `waiting for ${c.name} to answer`, waited),
  ]];
}

// A ready child's own process (nginx's master starts another in its place)
// seen stopped `stoppedChecks` times in a row, the same process each time
// by its start time, is killed right after the check that saw it its own.
function onChecked(c: Child, stopped: ProcessState[], p: Policy): Step {
  const counts: Record<string, number> = {};
  const actions: Action[] = [];
  const msg = `${c.name} worker process is stopped; replacing it`;
  for (const { pid, start } of stopped) {
    const id = `${pid}@${start}`;
    counts[id] = (c.stoppedChildren[id] ?? 0) + 1;
    if (counts[id] !== p.stoppedChecks) continue;
    actions.push(log(c, "error", msg, { pid }), { kind: "kill", pid });
  }
  return [{ ...c, stoppedChildren: counts }, actions];
}

function onReady(c: Child, e: Event, now: number, p: Policy): Step {
  if (e.kind === "checked") return onChecked(c, e.stoppedChildren, p);
  if (e.kind !== "probe") return [c, []];
  if (e.answer) return [{ ...c, strikes: 0 }, []];
  const strikes = c.strikes + 1;
  if (strikes < p.probeFailures) return [{ ...c, strikes }, []];
  const fields = { failed_probes: strikes, ready_ms: now - c.since };
  return replace({ ...c, strikes }, "is not answering", fields);
}

// Why a child died, in words.
function cause(c: Child, e: Exited): string {
  if (c.killedFor) return `replaced: it ${c.killedFor}`;
  if (e.oomMiB) return "killed by the kernel: out of memory";
  if (e.signal) return `killed by ${e.signal}`;
  return `exited with code ${e.code}`;
}

function onExit(c: Child, e: Exited, now: number, p: Policy): Step {
  if (c.phase === "stopping") return [{ ...c, phase: "gone", since: now }, []];
  const steady = c.phase === "ready" && now - c.since >= p.steadyMs;
  const attempts = steady ? 1 : c.attempts + 1;
  const [first, most] = p.backoffMs;
  const delayMs = Math.min(first * 2 ** (attempts - 1), most);
  const why = cause(c, e);
  const fields = { code: e.code, signal: e.signal, memory_limit_mib: e.oomMiB };
  if (attempts >= p.startAttempts) {
    const msg =
      `${c.name} failed ${attempts} times in a row (last: ${why}); stopping the stack`;
    return [{ ...c, phase: "gone", since: now }, [
      log(c, "error", msg, { ...fields, attempts }),
      { kind: "give-up" },
    ]];
  }
  const next = { ...newChild(c.name, c.fields, now), attempts, delayMs };
  // The first failure is told; the rest of a crash loop only by its count,
  // and a replacement was told when the child was killed.
  if (attempts > 1 || c.killedFor) return [next, []];
  const level = e.oomMiB || e.signal ? "error" : "warn";
  const restart = { ...fields, delay_ms: delayMs };
  return [next, [log(c, level, `${c.name} ${why}; restarting`, restart)]];
}

/** The child's next state on `e` at `now` (ms), and the shell's actions. */
export function step(c: Child, e: Event, now: number, p = POLICY): Step {
  if (c.phase === "gone") return [c, []];
  if (e.kind === "stop") {
    if (c.pid === undefined) return [{ ...c, phase: "gone" }, []];
    return [{ ...c, phase: "stopping", since: now }, [{ kind: "stop" }]];
  }
  if (e.kind === "exited") return onExit(c, e, now, p);
  if (e.kind === "spawned") return [{ ...c, pid: e.pid }, []];
  // Probes answered by a socket another process bound: replaced at once.
  if (e.kind === "probe" && e.answer === "foreign") {
    return replace(c, "does not own its socket (another process bound it)");
  }
  switch (c.phase) {
    case "backoff":
      if (e.kind !== "tick" || now < c.since + c.delayMs) return [c, []];
      return [{ ...c, phase: "starting", since: now }, [{ kind: "spawn" }]];
    case "starting":
      return onStarting(c, e, now, p);
    case "ready":
      return onReady(c, e, now, p);
    default:
      return [c, []];
  }
}
