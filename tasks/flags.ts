/**
 * `deno task flags [stack|compile]`: the permission flags for the current
 * environment: the service's (`deno task start`, `dev`), the executable's,
 * or the stack supervisor's. A bad setting gets just enough for the
 * program itself to read and report it (one line, exit 2).
 *
 * @module
 */
import {
  ConfigError,
  loadServiceConfig,
  SERVICE_ENV,
} from "../service/config.ts";
import { compileFlags, serviceFlags } from "../service/flags.ts";
import { stackFlags } from "../stack/permissions.ts";
import {
  loadStackConfig,
  machineFacts,
  STACK_ENV,
} from "../stack/stack_config.ts";

if (import.meta.main) {
  const env = (name: string) => Deno.env.get(name);
  let flags: string[];
  try {
    flags = Deno.args[0] === "stack"
      ? stackFlags(loadStackConfig(env, await machineFacts()), Deno.execPath())
      : Deno.args[0] === "compile"
      ? compileFlags(loadServiceConfig(env), env("TARGET") || undefined)
      : serviceFlags(loadServiceConfig(env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Enough for the program itself to read and report the bad setting.
    flags = Deno.args[0] === "stack"
      ? [
        `--allow-env=${STACK_ENV.join(",")}`,
        "--allow-sys=uid",
        "--allow-run=cat",
      ]
      : [`--allow-env=${SERVICE_ENV.join(",")}`];
  }
  console.log(flags.join(" "));
}
