/**
 * The checks before a stack writes anything: not root, nginx installed,
 * PORT free, the sockets' paths short enough, a readable WORKER_BUNDLE, and
 * no other stack still serving from the runtime directory. Each failure is
 * a {@linkcode ConfigError} of one line (exit code 2).
 *
 * @module
 */
import { ConfigError, MAX_SOCKET_PATH } from "../service/config.ts";
import { askHealth } from "./children.ts";
import { workerSocket } from "./runtime_dir.ts";
import type { StackConfig } from "./stack_config.ts";

/** What the stack says to root, as PostgreSQL does: one line, exit 2. */
export const ROOT_REFUSED =
  "The stack does not run as root: every process of it would hold root's powers. Start it as an ordinary user (for example `runuser -u USER -- deno task stack` from a checkout USER can read), or run the image, which runs as uid 10001";

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
      return `Invalid PORT ${port}: ${
        err instanceof Deno.errors.AddrInUse
          ? "the address is in use by another program"
          : `cannot listen there (${String(err)})`
      }`;
    }
  }
  return undefined;
}

// The other checks on the settings, in order: the first problem, if any.
async function settingProblem(c: StackConfig): Promise<string | undefined> {
  const dir = `Invalid RUNTIME_DIR ${JSON.stringify(c.runtimeDir)}`;
  if (workerSocket(c.runtimeDir, c.workers - 1).length > MAX_SOCKET_PATH) {
    return `${dir}: too long, its sockets' paths would pass ${MAX_SOCKET_PATH} bytes`;
  }
  if (c.workerBundle) {
    const info = await Deno.stat(c.workerBundle).catch(() => undefined);
    if (!info?.isFile) {
      return `Invalid WORKER_BUNDLE ${
        JSON.stringify(c.workerBundle)
      }: not a readable file`;
    }
  }
  // A worker socket that still answers belongs to a stack that still runs.
  for (let i = 0; i < c.workers; i++) {
    const socket = workerSocket(c.runtimeDir, i);
    if (await askHealth(socket)) {
      return `${dir}: a worker of another stack still answers on ${socket}; stop that stack first`;
    }
  }
  return undefined;
}

/** The checks, in order; throws the first problem. */
export async function preflight(
  config: StackConfig,
): Promise<{ ipv6: boolean }> {
  if (Deno.uid() === 0) throw new ConfigError(ROOT_REFUSED);
  const command = new Deno.Command("nginx", {
    args: ["-v"],
    stdout: "null",
    stderr: "null",
  });
  const nginx = await Promise.resolve().then(() => command.output())
    .catch(() => undefined);
  if (!nginx?.success) {
    throw new ConfigError(
      "nginx is not installed or not on PATH: on Debian or Ubuntu run apt-get install nginx-light",
    );
  }
  const ipv6 = hasIpv6();
  const problem = portProblem(config.port, ipv6) ??
    await settingProblem(config);
  if (problem) throw new ConfigError(problem);
  return { ipv6 };
}
