/**
 * The checks before a stack writes anything: nginx installed, PORT free,
 * the sockets' paths short enough, a readable WORKER_BUNDLE, no other stack
 * still serving from the runtime directory, and, as root, the power to run
 * the children as another user. Each failure is a {@linkcode StackError}
 * of one line; `main.ts` maps it to an exit code.
 *
 * @module
 */
import type { LogFields } from "../service/log.ts";
import { MAX_SOCKET_PATH } from "../service/config.ts";
import { probeSocket } from "./children.ts";
import { NGINX_ACCOUNT } from "./nginx_user.ts";
import { workerSocket } from "./runtime_dir.ts";
import type { StackConfig } from "./stack_config.ts";

/** Why the stack cannot start or go on, with its exit code. */
export class StackError extends Error {
  /** The error's name. */
  override name = "StackError";
  /** A stack that stops for `message` exits with `code`. */
  constructor(
    message: string,
    /** 2: a setting or the machine's setup; 1: anything else. */
    readonly code: 1 | 2,
    /** Extra fields for its log line. */
    readonly fields: LogFields = {},
  ) {
    super(message);
  }
}

async function runs(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success
      ? undefined
      : new TextDecoder().decode(out.stderr).trim();
  } catch (err) {
    return String(err);
  }
}

// nginx refuses `listen [::]` on a kernel without IPv6; try a bind first.
function hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

// Why nginx could not bind PORT where it listens, or undefined.
function portProblem(port: number, ipv6: boolean): string | undefined {
  for (const hostname of ipv6 ? ["0.0.0.0", "::"] : ["0.0.0.0"]) {
    try {
      Deno.listen({ hostname, port }).close();
    } catch (err) {
      return err instanceof Deno.errors.AddrInUse
        ? "the address is in use by another program"
        : `cannot listen there (${String(err)})`;
    }
  }
  return undefined;
}

async function bundleProblem(config: StackConfig): Promise<string | undefined> {
  if (!config.workerBundle) return undefined;
  const info = await Deno.stat(config.workerBundle).catch(() => undefined);
  if (info?.isFile) return undefined;
  return `Invalid WORKER_BUNDLE ${
    JSON.stringify(config.workerBundle)
  }: not a readable file`;
}

// A worker socket that still answers belongs to a stack that still runs.
async function leftoverWorker(
  config: StackConfig,
): Promise<string | undefined> {
  for (let i = 0; i < config.workers; i++) {
    const socket = workerSocket(config.runtimeDir, i);
    if (await probeSocket(socket)) {
      return `Invalid RUNTIME_DIR ${
        JSON.stringify(config.runtimeDir)
      }: a worker of another stack still answers on ${socket}; stop that stack first`;
    }
  }
  return undefined;
}

// As root every child runs as the stack's account: root without the
// capabilities to switch users (a container run as root with --cap-drop)
// cannot, and is told how to run instead.
async function rootProblem(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return undefined;
  const why = await runs("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "true",
  ]);
  if (why === undefined) return undefined;
  return `running as root without the capabilities to run the children as ${NGINX_ACCOUNT} (CAP_SETUID, CAP_SETGID): run the stack as an ordinary user (the image's default, uid 10001), or keep those capabilities (${why})`;
}

/** The checks, in order; throws the first problem. */
export async function preflight(
  config: StackConfig,
): Promise<{ ipv6: boolean }> {
  if (await runs("nginx", ["-v"]) !== undefined) {
    throw new StackError(
      "nginx is not installed or not on PATH: on Debian or Ubuntu run apt-get install nginx-light",
      2,
    );
  }
  const ipv6 = hasIpv6();
  const portIssue = portProblem(config.port, ipv6);
  const socket = workerSocket(config.runtimeDir, config.workers - 1);
  const problem = (portIssue && `Invalid PORT ${config.port}: ${portIssue}`) ??
    (socket.length > MAX_SOCKET_PATH
      ? `Invalid RUNTIME_DIR ${
        JSON.stringify(config.runtimeDir)
      }: too long, its sockets' paths would pass ${MAX_SOCKET_PATH} bytes`
      : undefined) ??
    await bundleProblem(config) ?? await leftoverWorker(config) ??
    await rootProblem();
  if (problem) throw new StackError(problem, 2);
  return { ipv6 };
}
