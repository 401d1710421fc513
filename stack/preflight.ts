/**
 * A check before a stack starts: no stack left behind may still serve from
 * its runtime directory (a busy PORT is refused by the supervisor's
 * `placeProblem`). The failure is one sentence for the log; the supervisor
 * exits 2 with it.
 *
 * @module
 */
import type { StackConfig } from "../service/config.ts";
import { workerSocket } from "./runtime_dir.ts";

/**
 * Why the runtime directory cannot be used, or undefined: a worker socket
 * that still answers belongs to a stack that is still running.
 */
export async function leftoverWorker(
  config: StackConfig,
  probe: (path: string) => Promise<boolean>,
): Promise<string | undefined> {
  for (let i = 0; i < config.workers; i++) {
    const socket = workerSocket(config.runtimeDir, i);
    if (await probe(socket)) {
      return `Invalid RUNTIME_DIR ${
        JSON.stringify(config.runtimeDir)
      }: a worker of another stack still answers on ${socket}; stop that stack first`;
    }
  }
  return undefined;
}
