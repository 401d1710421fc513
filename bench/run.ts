/**
 * `deno task bench`: the micro benchmarks (`deno bench`), nginx's share of
 * `/time`'s delay (nginx_delay.ts), then the servers side by side with wrk
 * (bench.ts, which writes bench/results). `deno task bench --quick`: only
 * bench.ts's headline ratios, from fewer and shorter rounds.
 *
 * @module
 */
import { PROJECT_DIR } from "./servers.ts";

const QUICK = "--quick";

const unknown = Deno.args.filter((a) => a !== QUICK);
if (unknown.length > 0) {
  console.error(
    `bench: unknown argument ${JSON.stringify(unknown[0])} (only ${QUICK})`,
  );
  Deno.exit(2);
}

const steps = Deno.args.includes(QUICK)
  ? [["run", "-A", "--frozen", "bench/bench.ts", QUICK]]
  : [
    ["bench", "--frozen", "bench/micro_bench.ts"],
    ["run", "-A", "--frozen", "bench/nginx_delay.ts"],
    ["run", "-A", "--frozen", "bench/bench.ts"],
  ];

let child: Deno.ChildProcess | undefined;
// Ctrl-C reaches the step itself (same process group), which cleans up; a
// signal sent to this process alone is passed on.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      child?.kill(signal);
    } catch {
      // Already gone.
    }
  });
}
for (const args of steps) {
  child = new Deno.Command(Deno.execPath(), { args, cwd: PROJECT_DIR })
    .spawn();
  const { code } = await child.status;
  if (code !== 0) Deno.exit(code);
}
Deno.exit(0);
