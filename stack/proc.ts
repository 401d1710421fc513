/**
 * The two programs through which the supervisor reads /proc and /sys
 * (`cat`) and signals processes it did not spawn (`kill`): Deno allows
 * either directly only with every permission. Each run has a deadline; one
 * that cannot start, times out or reports an error rejects, and the
 * supervisor says so once (supervisor.ts). A process or file gone is no
 * error: processes come and go between a listing and a read.
 *
 * @module
 */

const DEADLINE_MS = 2000;
const GONE = /No such (file or directory|process)$/;

// `program`'s stdout, or a rejection saying why there is none.
async function tool(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(DEADLINE_MS),
  }).output();
  const decoder = new TextDecoder();
  const error = decoder.decode(out.stderr).split("\n")
    .find((line) => line !== "" && !GONE.test(line));
  if (out.signal || error !== undefined) {
    throw new Error(
      out.signal ? `${program} did not end within ${DEADLINE_MS} ms` : error,
    );
  }
  return decoder.decode(out.stdout);
}

/** Files' text, one after the other (one gone adds nothing), through `cat`. */
export function catFiles(paths: string[]): Promise<string> {
  return paths.length === 0 ? Promise.resolve("") : tool("cat", paths);
}

/**
 * SIGKILLs `pid` (a negative one: the process group), a process the
 * supervisor did not spawn: nginx's worker processes.
 */
export async function killPid(pid: number): Promise<void> {
  await tool("kill", ["-KILL", "--", String(pid)]);
}

/** A process as /proc shows it. */
export interface ProcessState {
  /** Its pid. */
  pid: number;
  /** Its parent's pid. */
  ppid: number;
  /** Stopped by a signal or a tracer (state T or t). */
  stopped: boolean;
  /**
   * When it started (clock ticks since boot): with the pid, the process's
   * identity, since a pid is another process's once its own is reaped.
   */
  start: number;
}

/**
 * The state of `pids` and of the children of `parents`, from their
 * `/proc/PID/stat`; a process gone meanwhile is left out. With `/proc`
 * mounted `hidepid`, these stay visible: every process of the stack is
 * this user's.
 */
export async function processStates(
  pids: number[],
  parents: number[],
): Promise<ProcessState[]> {
  const children = await catFiles(
    parents.map((p) => `/proc/${p}/task/${p}/children`),
  );
  const all = [...pids, ...children.split(/\s+/).filter(Boolean)];
  const stats = await catFiles(all.map((p) => `/proc/${p}/stat`));
  // `pid (comm) state ppid` and 17 fields more, then the start time; comm
  // may hold spaces and parentheses.
  const line = /^(\d+) \(.*\) (\S) (\d+)(?: \S+){17} (\d+) /gm;
  return [...stats.matchAll(line)].map((m) => ({
    pid: Number(m[1]),
    ppid: Number(m[3]),
    stopped: /^[Tt]$/.test(m[2]),
    start: Number(m[4]),
  }));
}
