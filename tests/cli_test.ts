// Every program answers --help and --version and exits 0, without starting
// anything: the service (main.ts, which the executable runs), the stack.
import assert from "node:assert/strict";
import meta from "../deno.json" with { type: "json" };
import { SERVICE_ENV } from "../service/config.ts";
import { STACK_ENV } from "../stack/stack_config.ts";
import { PROJECT_DIR } from "./test_util.ts";

// A program that starts instead of answering is stopped after a minute:
// the test then fails on its exit code.
async function answer(args: string[]): Promise<[number, string]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: PROJECT_DIR,
    stdin: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return [out.code, new TextDecoder().decode(out.stdout)];
}

const PROGRAMS: [string, string[], readonly string[]][] = [
  ["the service", ["run", "-q", "--allow-env", "main.ts"], SERVICE_ENV],
  ["the stack", ["task", "-q", "stack"], STACK_ENV],
];

for (const [name, command, settings] of PROGRAMS) {
  Deno.test(`${name} prints its usage for --help and its version for --version, exit 0`, async () => {
    const [code, usage] = await answer([...command, "--help"]);
    assert.equal(code, 0, usage);
    assert.match(usage, new RegExp(`^ip-timestamp .*${meta.version}`));
    for (const setting of settings) assert.ok(usage.includes(setting), setting);
    assert.deepEqual(await answer([...command, "--version"]), [
      0,
      `${meta.version}\n`,
    ]);
  });
}
