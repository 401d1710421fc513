/**
 * The memory limit of the cgroup the stack runs in, on cgroup v2
 * (`memory.max`, `memory.events`) and v1 (`memory.limit_in_bytes`,
 * `memory.oom_control`), and how many processes the kernel killed for
 * it. The CPU quota needs nothing here: Deno's
 * `navigator.hardwareConcurrency` already follows `cpu.max` (v2) and
 * `cpu.cfs_quota_us` (v1).
 *
 * The files are read through `cat` (proc.ts); the parsing is plain and
 * tested on fake files of both versions.
 *
 * @module
 */

/** Reads a file's text: empty when it is not there. */
export type ReadText = (path: string) => Promise<string>;

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
      out.push({
        bytes: 0,
        file: `${base}/${limit}`,
        events: `${base}/${events}`,
      });
    }
  }
  return out;
}

/**
 * The tightest memory limit of this process's cgroup, or undefined when
 * there is none.
 */
export async function memoryLimit(
  read: ReadText,
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
  read: ReadText,
  limit: MemoryLimit,
): Promise<number> {
  const m = (await read(limit.events)).match(/^oom_kill (\d+)$/m);
  return m ? Number(m[1]) : 0;
}
