/**
 * The checks before a stack writes anything: not root, PORT free, the
 * sockets' paths short enough, a readable WORKER_BUNDLE, and no other stack
 * still serving from the runtime directory. Each failure is a
 * {@linkcode ConfigError} of one line (exit code 2).
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

// Why `hostname:port` cannot be bound, or undefined.
function bindError(hostname: string, port: number): unknown {
  try {
    Deno.listen({ hostname, port }).close();
  } catch (err) {
    return err;
  }
}

/** The checks, in order; throws the first problem. */
export async function preflight(c: StackConfig): Promise<{ ipv6: boolean }> {
  if (Deno.uid() === 0) throw new ConfigError(ROOT_REFUSED);
  // nginx refuses `listen [::]` on a kernel without IPv6.
  const ipv6 = !bindError("::", 0);
  for (const hostname of ipv6 ? ["0.0.0.0", "::"] : ["0.0.0.0"]) {
    const err = bindError(hostname, c.port);
    if (!err) continue;
    throw new ConfigError(
      `Invalid PORT ${c.port}: ${
        err instanceof Deno.errors.AddrInUse
          ? "the address is in use by another program"
          : `cannot listen there (${String(err)})`
      }`,
    );
  }
  const dir = `Invalid RUNTIME_DIR ${JSON.stringify(c.runtimeDir)}`;
  if (workerSocket(c.runtimeDir, c.workers - 1).length > MAX_SOCKET_PATH) {
    throw new ConfigError(
      `${dir}: too long, its sockets' paths would pass ${MAX_SOCKET_PATH} bytes`,
    );
  }
  const bundle = c.workerBundle;
  if (bundle && !(await Deno.stat(bundle).catch(() => null))?.isFile) {
    throw new ConfigError(
      `Invalid WORKER_BUNDLE ${JSON.stringify(bundle)}: not a readable file`,
    );
  }
  // A worker socket that still answers belongs to a stack that still runs.
  for (let i = 0; i < c.workers; i++) {
    const socket = workerSocket(c.runtimeDir, i);
    if (await askHealth(socket)) {
      throw new ConfigError(
        `${dir}: a worker of another stack still answers on ${socket}; stop that stack first`,
      );
    }
  }
  return { ipv6 };
}
