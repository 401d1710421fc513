/**
 * The kernel as the supervisor sees it: processes in /proc and its
 * cgroup's memory limit and OOM kills (v1 and v2), read through `cat`, and
 * signals to processes it did not spawn, through `kill` (Deno allows either
 * directly only with every permission). A run that cannot start, times out
 * or reports an error rejects, for the supervisor to say so once; a
 * process or file gone is no error: they come and go.
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

// Files' text, one after the other (one gone adds nothing).
function catFiles(paths: string[]): Promise<string> {
  return paths.length === 0 ? Promise.resolve("") : tool("cat", paths);
}

/** SIGKILLs `pid` (negative: a process group), one the stack did not spawn. */
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
  /** When it started (ticks since boot): with the pid, its identity. */
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

/** Reads a file's text: empty when it is not there. */
export type ReadText = (path: string) => Promise<string>;

const cat: ReadText = (path) => catFiles([path]);

/** A memory limit and the files that tell about it. */
export interface MemoryLimit {
  /** The limit in bytes. */
  bytes: number;
  /** The file it was read from (`…/memory.max`, `…/memory.limit_in_bytes`). */
  file: string;
  /** The file whose `oom_kill` line counts the kernel's kills. */
  events: string;
}

// v1 reports "no limit" as the largest page-aligned 63-bit number.
const UNLIMITED_V1 = 2 ** 62;

// Where each hierarchy may show this process's cgroup: at the mount's root
// (a container's own namespace) or at its path in /proc/self/cgroup (a host).
function candidates(selfCgroup: string, root: string): MemoryLimit[] {
  const out: MemoryLimit[] = [];
  for (const line of selfCgroup.split("\n")) {
    const [, controllers, path] = line.match(/^\d+:([^:]*):(\/.*)$/) ?? [];
    const v2 = controllers === "";
    if (!v2 && !controllers?.split(",").includes("memory")) continue;
    const [dir, limit, events] = v2
      ? ["", "memory.max", "memory.events"]
      : ["/memory", "memory.limit_in_bytes", "memory.oom_control"];
    for (const d of new Set([path === "/" ? "" : path, ""])) {
      const base = `${root}${dir}${d}`;
      const file = `${base}/${limit}`;
      out.push({ bytes: 0, file, events: `${base}/${events}` });
    }
  }
  return out;
}

/** The tightest memory limit of this process's cgroup, if there is one. */
export async function memoryLimit(
  read: ReadText = cat,
  root = "/sys/fs/cgroup",
): Promise<MemoryLimit | undefined> {
  const self = await read("/proc/self/cgroup");
  let best: MemoryLimit | undefined;
  for (const candidate of candidates(self, root)) {
    const text = (await read(candidate.file)).trim();
    if (!/^\d+$/.test(text)) continue; // "max", absent
    const bytes = Number(text);
    if (bytes >= UNLIMITED_V1) continue;
    if (!best || bytes < best.bytes) best = { ...candidate, bytes };
  }
  return best;
}

/** How many processes the kernel has killed for passing the limit. */
export async function oomKills(
  limit: MemoryLimit,
  read: ReadText = cat,
): Promise<number> {
  const m = (await read(limit.events)).match(/^oom_kill (\d+)$/m);
  return m ? Number(m[1]) : 0;
}
