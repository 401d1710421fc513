/**
 * How the tests and the bench start a stack as root: the stack refuses
 * root (as PostgreSQL does), so a root runner starts it as `nobody`, with
 * the image's command and bundles (tasks/bundle.ts), built once a run.
 *
 * @module
 */
import { bundle } from "../tasks/bundle.ts";
import { commandPath } from "./net.ts";

/** The uid the tests' and the bench's stacks run as (as root: `nobody`). */
export const STACK_UID: number = Deno.uid() === 0 ? 65534 : Deno.uid()!;

/** Makes `dir` the stack user's (as root: `nobody`'s). */
export async function giveToStackUser(dir: string): Promise<void> {
  if (STACK_UID !== Deno.uid()) await Deno.chown(dir, STACK_UID, STACK_UID);
}

let bundles: Promise<string> | undefined;

// As root: the bundles the image runs (tasks/bundle.ts), built once a run
// where `nobody` may read them, with a Deno cache of its own; removed when
// the test run ends.
function rootBundles(): Promise<string> {
  bundles ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "ip-timestamp-bundles-" });
    await Deno.chmod(dir, 0o755);
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(dir, { recursive: true });
    });
    await bundle(`${dir}/app`, `${dir}/app/geo.mmdb`);
    await Deno.mkdir(`${dir}/deno`);
    await giveToStackUser(`${dir}/deno`);
    return dir;
  })();
  return bundles;
}

/**
 * As root, the image's command run as `nobody`, for a stack with the
 * settings `env`: `flags.js` prints the supervisor's flags, `stack.js` is
 * the supervisor, `worker.js` the workers' program.
 */
export async function asStackUser(
  env: Record<string, string>,
): Promise<{ cmd: string; args: string[]; env: Record<string, string> }> {
  const dir = await rootBundles();
  const app = `${dir}/app`;
  const flags =
    `"$0" run -q --allow-env --allow-sys=uid --allow-run=cat ${app}/flags.js stack`;
  // Absolute paths: a test may set PATH to show what the stack says.
  return {
    cmd: commandPath("setpriv") ?? "setpriv",
    args: [
      `--reuid=${STACK_UID}`,
      `--regid=${STACK_UID}`,
      "--clear-groups",
      "--",
      "/bin/sh",
      "-c",
      `exec "$0" run $(${flags}) ${app}/stack.js`,
      Deno.execPath(),
    ],
    env: {
      WORKER_BUNDLE: `${app}/worker.js`,
      DENO_DIR: `${dir}/deno`,
      HOME: `${dir}/deno`,
      PATH: `${Deno.env.get("PATH")}:/usr/local/sbin:/usr/sbin`,
      ...env,
    },
  };
}
