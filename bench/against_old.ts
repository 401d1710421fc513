/**
 * `deno run -A bench/against_old.ts DIR`: this checkout's stack against the
 * stack of an older commit checked out in DIR (`git worktree add /tmp/old
 * 92674da`), side by side in one run, rounds alternating: behind a trusted
 * proxy with a two-hop `X-Forwarded-For`, and without a proxy, the rate
 * limit on and never reached. Prints, per setup, the median of the rounds'
 * ratios this ÷ old, in req/s and in CPU time per request. `BENCH_PATH`
 * names the path asked (default `/`).
 *
 * @module
 */
import { cleanUp, type Server, sleep, startStack } from "./servers.ts";
import { cpuTicks, median } from "./bench.ts";
import { wrk } from "../testing/wrk.ts";

const OLD = Deno.args[0];
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 9);
const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 5);
const TWO_HOPS = new URL("two_hops.lua", import.meta.url).pathname;
// The path asked (BENCH_PATH, default `/`): `/time` for its cost.
const PATH = (Deno.env.get("BENCH_PATH") ?? "/").replace(/^\//, "");
// Limits on, never reached: the key is computed for every request (below
// 65,536, which the old stack passed to limit_conn as it was).
const LIMITED = { RATE_LIMIT: "60000" };
const SETUPS: [string, Record<string, string>, string | undefined][] = [
  ["proxy", { ...LIMITED, TRUSTED_PROXIES: "127.0.0.1,10.0.0.0/8" }, TWO_HOPS],
  ["plain", LIMITED, undefined],
];

type Sample = Record<"rps" | "cpuUs" | "nginxUs" | "workersUs", number>;

// req/s, and CPU time per request in µs: all, nginx's, the workers'.
async function sample(s: Server, script?: string): Promise<Sample> {
  const ticks = () =>
    Promise.all([undefined, "nginx", "deno"].map((n) => cpuTicks(s.roots, n)));
  const before = await ticks();
  const r = await wrk(s.url + PATH, {
    connections: 64,
    seconds: SECONDS,
    script,
  });
  const [cpuUs, nginxUs, workersUs] = (await ticks()).map((t, i) =>
    (t - before[i]) * 10_000 / (r.rps * SECONDS)
  );
  return { rps: r.rps, cpuUs, nginxUs, workersUs };
}

const FIELDS = ["rps", "cpuUs", "nginxUs", "workersUs"] as const;

async function main() {
  if (!OLD) {
    console.error("usage: bench/against_old.ts DIR (an older worktree)");
    Deno.exit(2);
  }
  for (const [name, env, script] of SETUPS) {
    const stacks = [await startStack(env), await startStack(env, OLD)];
    const ratios: Sample[] = [];
    try {
      for (const s of stacks) await wrk(s.url, { connections: 64, seconds: 2 });
      for (let round = 0; round < ROUNDS; round++) {
        const got: Sample[] = [];
        for (const i of round % 2 ? [1, 0] : [0, 1]) {
          await sleep(1000);
          got[i] = await sample(stacks[i], script);
        }
        ratios.push(
          Object.fromEntries(
            FIELDS.map((f) => [f, got[0][f] / got[1][f]]),
          ) as Sample,
        );
        const shown = (x: Sample) =>
          `${x.rps.toFixed(0)} req/s, ${x.nginxUs.toFixed(0)} + ${
            x.workersUs.toFixed(0)
          } µs/req`;
        console.log(
          `${name} round ${round + 1}: this ${shown(got[0])}, old ${
            shown(got[1])
          }`,
        );
      }
    } finally {
      for (const s of stacks) await s.stop();
    }
    const m = (f: keyof Sample) => median(ratios.map((r) => r[f])).toFixed(3);
    console.log(
      `${name}: this ÷ old, medians of ${ROUNDS} rounds: req/s ${
        m("rps")
      }; CPU per request ${m("cpuUs")} (nginx ${m("nginxUs")}, workers ${
        m("workersUs")
      })`,
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } finally {
    await cleanUp();
  }
}
