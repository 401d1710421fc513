/**
 * Helpers shared by the tests that run real processes.
 *
 * @module
 */
import { commandPath, freePort, PROJECT_DIR } from "../testing/net.ts";
import { STATIC_FILES } from "../service/static_files.ts";
import {
  asStackUser,
  giveToStackUser,
  STACK_UID,
} from "../testing/stack_command.ts";

export { STACK_UID };

// The bench starts servers the same way (testing/net.ts).
export { commandPath, freePort, PROJECT_DIR };

// A port from freePort is free only until someone binds it: start servers
// through onFreePort.

/** A start that failed because its port was taken between probe and bind. */
export class PortTaken extends Error {
  override name = "PortTaken";
}

/** Whether a process's output says its port was in use (Go: lower case). */
export function saysPortTaken(lines: string[]): boolean {
  return lines.some((l) => /address (is|already) in use/i.test(l));
}

/**
 * Runs `start` on a free port; if the port was taken meanwhile (`start`
 * throws {@linkcode PortTaken}), again on another, up to five times.
 */
export async function onFreePort<T>(
  start: (port: number) => Promise<T>,
  ports: () => number = freePort,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start(ports());
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 5) throw err;
    }
  }
}

/**
 * Waits until a process just started says it listens; if it never does, it
 * is stopped, and the error is {@linkcode PortTaken} when its port was taken.
 */
export async function listening(
  proc: Running,
  pattern: RegExp = /"msg":"listening"/,
): Promise<Running> {
  try {
    await proc.waitFor(pattern);
    return proc;
  } catch (err) {
    try {
      proc.child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await proc.child.status;
    await proc.drained;
    if (saysPortTaken(proc.stderr)) throw new PortTaken(String(err));
    throw err;
  }
}

/**
 * A temporary directory for a runtime directory the stack creates: the
 * stack's user may write in it.
 */
export async function openTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o755);
  await giveToStackUser(dir);
  return dir;
}

/** Runs `body` with a fresh temp directory, removed even when it fails. */
export async function withTempDir<T>(
  body: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "ip-timestamp-test-" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Whether a command can be run. */
export function hasCommand(name: string): boolean {
  return commandPath(name) !== undefined;
}

/**
 * Whether tests that need `tool` should run. Missing tools skip the test
 * on a laptop, but fail it in CI (`CI=true`), where nothing may skip.
 */
export function needs(...tools: string[]): boolean {
  const missing = tools.filter((t) => !hasCommand(t));
  return missing.length === 0 || cannotRun(
    `${missing.join(", ")} not installed ` +
      "(the README's apt-get line under Prerequisites installs every tool)",
  );
}

/**
 * Whether tests that need root should run: as another user they skip,
 * saying `why` they need it, but fail in CI, as {@linkcode needs} does.
 */
export function needsRoot(why: string): boolean {
  return Deno.uid() === 0 || cannotRun(`needs root to ${why}`);
}

function cannotRun(what: string): false {
  if (Deno.env.get("CI") === "true") throw new Error(`Cannot run: ${what}`);
  console.warn(`skipping: ${what}`);
  return false;
}

/** Runs a command to its end and returns what it wrote to stdout. */
export async function stdoutOf(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env: options.env,
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/**
 * Leaves a socket file with no listener at `path`, as a crash does: a
 * process listens there and is killed (a closed listener would remove it).
 */
export async function staleSocket(path: string): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      // accept() keeps it alive (an exit would remove the socket) until
      // it is killed.
      `const l = Deno.listen({ transport: "unix", path: ${
        JSON.stringify(path)
      } });` + 'console.log("bound"); await l.accept();',
    ],
    stdin: "null",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  child.kill("SIGKILL");
  await child.status;
  await reader.cancel();
  // Else a test of what happens to a stale socket would test nothing.
  if (!value || !Deno.lstatSync(path).isSocket) {
    throw new Error(`could not leave a socket at ${path}`);
  }
}

/** Reads a child's output line by line into a list, while it runs. */
export function collectLines(
  stream: ReadableStream<Uint8Array>,
  lines: string[],
  onLine?: (line: string) => void,
): Promise<void> {
  return (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) !== -1) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        lines.push(line);
        onLine?.(line);
      }
    }
    if (rest) lines.push(rest);
  })();
}

/** A process under test, with everything it printed so far. */
export interface Running {
  child: Deno.ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line that matches. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
  /** Resolves once the output streams are read to the end. */
  drained: Promise<void>;
}

/** Starts a command and records its output. */
export function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Running {
  const child = new Deno.Command(cmd, {
    args,
    env: options.env,
    cwd: options.cwd ?? PROJECT_DIR,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: Waiter[] = [];
  const check = (line: string) => {
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  const drained = Promise.all([
    collectLines(child.stdout, stdout, check),
    collectLines(child.stderr, stderr, check),
  ]).then(() => {});
  return {
    child,
    stdout,
    stderr,
    drained,
    waitFor: (pattern, ms = 15_000) =>
      waitForLine(
        () => [...stdout, ...stderr],
        waiters,
        child.status,
        pattern,
        ms,
      ),
  };
}

type Waiter = { pattern: RegExp; resolve: (line: string) => void };

// The first output line matching `pattern`, seen or to come; rejects after
// `ms`, or once the process has exited without one.
function waitForLine(
  lines: () => string[],
  waiters: Waiter[],
  status: Promise<Deno.CommandStatus>,
  pattern: RegExp,
  ms: number,
): Promise<string> {
  const seen = lines().find((l) => pattern.test(l));
  if (seen) return Promise.resolve(seen);
  const fail = (why: string) =>
    new Error(`${why} ${pattern}:\n${lines().slice(-20).join("\n")}`);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(fail("Timed out waiting for")), ms);
    waiters.push({
      pattern,
      resolve: (line) => {
        clearTimeout(timer);
        resolve(line);
      },
    });
    status.then(() => setTimeout(() => reject(fail("Exited before")), 100));
  });
}

/** Starts `deno task <task>` with extra environment. */
export function denoTask(task: string, env: Record<string, string>): Running {
  return run(Deno.execPath(), ["task", "-q", task], { env });
}

/** How a test starts a stack: settings, and a command to run it under. */
export interface Launch {
  /** Settings beside PORT, RUNTIME_DIR, WORKERS=2 and RATE_LIMIT=0. */
  env?: Record<string, string>;
  /** A command that runs the task, e.g. `runuser -u USER --` (env cleared). */
  via?: string[];
  /** The directory to run it in (default: the project). */
  cwd?: string;
}

/**
 * The one way every test starts the stack: the command, its arguments,
 * environment and directory for a stack on `port` whose runtime directory
 * is `runtimeDir`: `deno task stack`, or as root the image's command as
 * `nobody` ({@linkcode STACK_UID}). {@linkcode startStack} waits for its
 * ready line, {@linkcode stackExit} for its exit; a test that must read
 * stdout itself spawns it.
 */
export async function stackCommand(
  port: number,
  runtimeDir: string,
  launch: Launch = {},
): Promise<
  { cmd: string; args: string[]; env: Record<string, string>; cwd?: string }
> {
  const env: Record<string, string> = {
    PORT: String(port),
    RUNTIME_DIR: runtimeDir,
    WORKERS: "2",
    RATE_LIMIT: "0",
    ...launch.env,
  };
  const task = [Deno.execPath(), "task", "-q", "stack"];
  if (!launch.via && STACK_UID === Deno.uid()) {
    return { cmd: task[0], args: task.slice(1), env, cwd: launch.cwd };
  }
  if (!launch.via) return { ...await asStackUser(env), cwd: launch.cwd };
  const settings = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return {
    cmd: launch.via[0],
    args: [...launch.via.slice(1), "env", ...settings, ...task],
    env: {},
    cwd: launch.cwd,
  };
}

/**
 * Runs a stack that must not start to its exit, on a free port (another if
 * it was taken meanwhile) and a runtime directory of its own unless `env`
 * names one (never the shared default); one that starts anyway is stopped.
 */
export async function stackExit(env: Record<string, string>) {
  const base = await openTempDir("ip-timestamp-test-");
  try {
    return await onFreePort(async (port) => {
      const { cmd, args, ...opts } = await stackCommand(port, `${base}/run`, {
        env: { WORKERS: "", RATE_LIMIT: "", ...env },
      });
      const proc = run(cmd, args, opts);
      const deadline = setTimeout(() => proc.child.kill("SIGTERM"), 20_000);
      const { code } = await proc.child.status;
      clearTimeout(deadline);
      await proc.drained;
      const lines = proc.stderr.filter((l) => l.startsWith("{"));
      if (env.PORT === undefined && saysPortTaken(lines)) {
        throw new PortTaken(lines.join("\n"));
      }
      return { code, lines, proc };
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

/**
 * The supervisor's pid: the process {@linkcode stackCommand} started
 * itself as root, else the deno process `deno task stack` runs.
 */
export async function supervisorPid(task: Deno.ChildProcess): Promise<number> {
  if (STACK_UID !== Deno.uid()) return task.pid;
  const out = await stdoutOf("pgrep", ["-P", String(task.pid), "-f", "stack"]);
  const pid = Number(out.trim());
  if (!(pid > 0)) throw new Error("the supervisor does not run");
  return pid;
}

/** A stack on a fresh port and runtime directory. */
export interface Stack extends Running {
  port: number;
  runtimeDir: string;
  url: string;
  /** Sends SIGTERM and returns the exit code. */
  stop(): Promise<number>;
  /** Removes the runtime directory (after stop). */
  cleanup(): Promise<void>;
}

// Stops a process that did not come up, and waits for it.
async function abandon(running: Running): Promise<void> {
  try {
    running.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await running.child.status;
  await running.drained;
}

/** Extra settings for a stack, or a function of its port that makes them. */
export type StackEnv =
  | Record<string, string>
  | ((port: number) => Record<string, string>);

/**
 * Starts `deno task stack` on a free port (another if the port is taken
 * under it) and a fresh runtime directory, and waits for its ready line.
 * If it never gets ready, nothing of it is left: no process, no directory.
 */
export async function startStack(
  env: StackEnv = {},
  options: {
    /** Where ports come from (a test of the retry hands out a taken one). */
    ports?: () => number;
    /** Where the temp directory goes (default: the system's). */
    tempRoot?: string;
  } = {},
): Promise<Stack> {
  const base = await Deno.makeTempDir({
    prefix: "ip-timestamp-test-",
    dir: options.tempRoot,
  });
  await Deno.chmod(base, 0o755);
  await giveToStackUser(base);
  const ports = options.ports ?? freePort;
  const fixed = typeof env === "function" ? undefined : env;
  const runtimeDir = fixed?.RUNTIME_DIR ?? `${base}/run`;
  const start = async (port: number): Promise<Stack> => {
    const { cmd, args, ...opts } = await stackCommand(port, runtimeDir, {
      env: typeof env === "function" ? env(port) : env,
    });
    const running = run(cmd, args, opts);
    try {
      await running.waitFor(/"msg":"ready"/, 30_000);
    } catch (err) {
      await abandon(running);
      const output = [...running.stdout, ...running.stderr];
      if (fixed?.PORT === undefined && saysPortTaken(output)) {
        throw new PortTaken(String(err));
      }
      throw err;
    }
    return {
      ...running,
      port,
      runtimeDir,
      url: `http://127.0.0.1:${port}`,
      async stop() {
        try {
          running.child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        const { code } = await running.child.status;
        await running.drained;
        return code;
      },
      cleanup: () => Deno.remove(base, { recursive: true }).catch(() => {}),
    };
  };
  try {
    const pick = fixed?.PORT === undefined ? ports : () => Number(fixed.PORT);
    return await onFreePort(start, pick);
  } catch (err) {
    await Deno.remove(base, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Runs `body` against a fresh stack, then stops it and removes its files. */
export async function withStack(
  env: StackEnv,
  body: (stack: Stack) => Promise<void>,
): Promise<void> {
  const stack = await startStack(env);
  try {
    await body(stack);
  } finally {
    await stack.stop();
    await stack.cleanup();
  }
}

/** Sends raw bytes over TCP and returns everything the server answers. */
export async function rawRequest(
  port: number,
  bytes: string,
  hostname = "127.0.0.1",
): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  await conn.write(new TextEncoder().encode(bytes)).catch(() => {});
  let text = "";
  const buffer = new Uint8Array(65536);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } catch {
    // A reset after the answer is fine.
  }
  conn.close();
  return text;
}

/** The static paths, for tests that walk every route. */
export const STATIC_PATHS = [...STATIC_FILES.keys()];

/** Polls `check` until it is true or `ms` pass; true if it became true. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** pids of the processes whose command line names `text`. */
export async function pidsOf(text: string): Promise<number[]> {
  return (await stdoutOf("pgrep", ["-f", text])).split("\n").filter(Boolean)
    .map(Number);
}

/** Whether `url` answers 2xx within 2 s. */
export async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
