/**
 * The memory limit of the cgroup the stack runs in, on cgroup v2
 * (`memory.max`, `memory.events`) and v1 (`memory.limit_in_bytes`,
 * `memory.oom_control`), and how many processes the kernel killed for
 * it. The CPU quota needs nothing here: Deno's
 * `navigator.hardwareConcurrency` already follows `cpu.max` (v2) and
 * `cpu.cfs_quota_us` (v1).
 *
 * Deno lets a program read /proc and /sys only with every permission, so
 * the files are read through `cat` ({@linkcode catFile}); the parsing is
 * plain and tested on fake files of both versions.
 *
 * @module
 */

/** Reads a file's text, or undefined when it cannot be read. */
export type ReadText = (path: string) => Promise<string | undefined>;

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
    if (path === undefined) continue;
    const dirs = new Set([path === "/" ? "" : path, ""]);
    if (controllers === "") {
      for (const d of dirs) {
        const base = `${root}${d}`;
        out.push({
          bytes: 0,
          file: `${base}/memory.max`,
          events: `${base}/memory.events`,
        });
      }
    } else if (controllers.split(",").includes("memory")) {
      for (const d of dirs) {
        const base = `${root}/memory${d}`;
        out.push({
          bytes: 0,
          file: `${base}/memory.limit_in_bytes`,
          events: `${base}/memory.oom_control`,
        });
      }
    }
  }
  return out;
}

/**
 * The tightest memory limit of this process's cgroup, or undefined when
 * there is none (or nothing could be read).
 */
export async function memoryLimit(
  read: ReadText,
  root = "/sys/fs/cgroup",
): Promise<MemoryLimit | undefined> {
  const self = await read("/proc/self/cgroup");
  if (self === undefined) return undefined;
  let best: MemoryLimit | undefined;
  for (const candidate of candidates(self, root)) {
    const text = (await read(candidate.file))?.trim();
    if (text === undefined || !/^\d+$/.test(text)) continue; // "max", absent
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
  const text = await read(limit.events) ?? "";
  const m = text.match(/^oom_kill (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

/**
 * Reads files through `cat`, which Deno's sandbox lets reach /proc and
 * /sys: their text, one after the other; one it cannot read adds nothing.
 */
export async function catFiles(paths: string[]): Promise<string> {
  if (paths.length === 0) return "";
  try {
    const out = await new Deno.Command("cat", {
      args: ["--", ...paths],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout);
  } catch {
    return ""; // No `cat` to run.
  }
}

/** One file's text through `cat`, or undefined when it cannot be read. */
export async function catFile(path: string): Promise<string | undefined> {
  return await catFiles([path]) || undefined;
}
