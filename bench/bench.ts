/**
 * `deno task bench`: the shipped stack against the physical limits, side by
 * side in one run on this machine, driven by wrk. Prints a table and the
 * target ratios, and the CPU time each server spent per request; writes
 * bench/results/latest.json and latest.svg. The servers: bench/servers.ts.
 *
 * @module
 */
import {
  cleanUp,
  costlyMix,
  freePort,
  PROJECT_DIR,
  type Server,
  sleep,
  spawnStack,
  startNginx,
  startStack,
  startTcp,
  stopper,
  waitHttp,
  WORKERS,
} from "./servers.ts";
import { failures, wrk } from "../testing/wrk.ts";

/**
 * `--quick`: the headline req/s ratios at 64 connections only, from fewer
 * and shorter rounds, without the soaks; bench/results is not written.
 */
const QUICK = Deno.args.includes("--quick");
const DURATION = Number(Deno.env.get("BENCH_SECONDS") ?? (QUICK ? 3 : 5));
// Fifteen rounds: on two shared cores one round's ratio can be anywhere
// from 0.7 to 1.4 times the next one's, and with nine rounds the medians
// still moved by 6-10% from run to run.
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? (QUICK ? 5 : 15));
const SOAK = Number(Deno.env.get("BENCH_SOAK_REQUESTS") ?? 1_000_000);
const CONNECTIONS = QUICK ? [64] : [64, 256];
const RESULTS = `${PROJECT_DIR}bench/results`;

interface Sample {
  rps: number;
  /** CPU time of the server's processes per request, in microseconds. */
  cpuUs: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Samples by `name|connections`, one per round. */
type Samples = Map<string, Sample[]>;

/** Memory in MiB: anonymous (RssAnon) and resident (VmRSS). */
interface Soak {
  requests: number;
  /** The largest worker's, at half and at the end. */
  anonHalfMiB: number;
  anonEndMiB: number;
  rssEndMiB: number;
  /** The supervisor's, at the end. */
  supervisorAnonMiB: number;
  errors: number;
}

interface Row {
  name: string;
  c: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  errors: number;
  rssMiB: number;
}

interface Target {
  figure: string;
  /** What it measures, in one line. */
  what: string;
  value: number;
  target: string;
  ok: (v: number) => boolean;
}

/**
 * CPU time (user + system, in clock ticks of 10 ms) of processes and all
 * their descendants: steadier than req/s on a shared machine, because time
 * the server did not get is not counted. With `named`, only the processes
 * of that name (`nginx`, `deno`).
 */
export async function cpuTicks(
  roots: number[],
  named?: string,
): Promise<number> {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(entry.name), Number(f[1]));
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (named !== undefined && name !== named) continue;
      ticks.set(Number(entry.name), Number(f[11]) + Number(f[12]));
    } catch {
      // Exited meanwhile.
    }
  }
  let total = 0;
  for (const [pid, t] of ticks) {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p)) {
      if (roots.includes(p)) {
        total += t;
        break;
      }
    }
  }
  return total;
}

/** One wrk run against a server, with the CPU time it cost the server. */
async function measure(s: Server, connections: number): Promise<Sample> {
  const before = await cpuTicks(s.roots);
  const r = await wrk(s.url, { connections, seconds: DURATION, latency: true });
  const ticks = (await cpuTicks(s.roots)) - before;
  return {
    rps: r.rps,
    cpuUs: ticks * 10_000 / (r.rps * DURATION),
    p50: r.p50,
    p99: r.p99,
    errors: failures(r),
  };
}

/**
 * Resident memory (VmRSS, peak VmHWM) counts the pages of the deno binary
 * that every Deno process maps; a cgroup is charged for those once. What
 * each worker adds to the charge is its anonymous memory (RssAnon).
 */
type MemoryField = "VmHWM" | "VmRSS" | "RssAnon";

async function memoryKiB(pid: number, field: MemoryField): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))![1]);
}

/** The largest value of `field` over the Deno workers of a server, in MiB. */
async function workerMemory(
  server: Server,
  field: MemoryField,
): Promise<number> {
  const pids = await server.denoPids();
  if (pids.length === 0) {
    throw new Error(`no Deno worker found for ${server.name}`);
  }
  return Math.max(...await Promise.all(pids.map((p) => memoryKiB(p, field)))) /
    1024;
}

/** The median of some numbers. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function startupMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = freePort();
    const started = performance.now();
    const { child } = await spawnStack("bench-startup-", {
      PORT: String(port),
    });
    await waitHttp(`http://127.0.0.1:${port}/healthz`, 5_000);
    times.push(performance.now() - started);
    await stopper(child)();
  }
  return median(times);
}

function svg(rows: { name: string; c: number; rps: number }[]): string {
  const max = Math.max(...rows.map((r) => r.rps));
  const barH = 22, gap = 8, left = 150, width = 460;
  const bars = rows.map((r, i) => {
    const y = 40 + i * (barH + gap);
    const w = Math.max(1, (r.rps / max) * width);
    const color = r.name.startsWith("stack") ? "#0969da" : "#8c959f";
    return `<text x="${left - 8}" y="${
      y + 15
    }" text-anchor="end">${r.name} c${r.c}</text>` +
      `<rect x="${left}" y="${y}" width="${
        w.toFixed(1)
      }" height="${barH}" fill="${color}"/>` +
      `<text x="${left + w + 6}" y="${y + 15}">${Math.round(r.rps)}</text>`;
  }).join("\n");
  const h = 40 + rows.length * (barH + gap) + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="700" height="${h}" font-family="sans-serif" font-size="13">
<text x="10" y="22" font-size="15" font-weight="bold">Requests/s, median of ${ROUNDS} runs (wrk, ${DURATION}s each)</text>
${bars}
</svg>
`;
}

async function machineInfo() {
  const nginx = await new Deno.Command("nginx", {
    args: ["-v"],
    stderr: "piped",
  })
    .output();
  return {
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    nginx: new TextDecoder().decode(nginx.stderr).trim(),
    date: new Date().toISOString(),
    workers: WORKERS,
  };
}

/**
 * Every server at every connection count, ROUNDS times. Rounds alternate
 * between servers so that a noisy moment on the shared machine does not
 * decide any one result; each round starts with another server, and each
 * run gets a pause, so no server always follows the same neighbour's
 * closing sockets.
 */
async function measureRounds(servers: Server[]): Promise<Samples> {
  const samples: Samples = new Map();
  for (const s of servers) await wrk(s.url, { connections: 64, seconds: 2 });
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of CONNECTIONS) {
      const order = servers.map((_, i) =>
        servers[(i + round) % servers.length]
      );
      for (const s of order) {
        await sleep(1000);
        const sample = await measure(s, c);
        const key = `${s.name}|${c}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        console.log(
          `round ${round + 1} ${s.name.padEnd(10)} c${c}: ${
            sample.rps.toFixed(0)
          } req/s p99 ${sample.p99} ms cpu ${
            sample.cpuUs.toFixed(1)
          } µs/req errors ${sample.errors}`,
        );
      }
    }
  }
  return samples;
}

/**
 * SOAK requests of the traffic that costs a worker most memory (half of
 * them random /api/ip/{address} lookups); worker memory at half and at the
 * end. `many`: each request from another client as well.
 */
async function soak(stack: Server, many = false): Promise<Soak> {
  let done = 0, errors = 0, half = 0;
  while (done < SOAK) {
    const r = await wrk(stack.url, {
      connections: 64,
      seconds: 10,
      ...costlyMix(many),
    });
    done += r.requests;
    errors += failures(r);
    if (!half && done >= SOAK / 2) {
      half = await workerMemory(stack, "RssAnon");
    }
  }
  const [supervisor] = await stack.supervisorPids!();
  return {
    requests: done,
    anonHalfMiB: half,
    anonEndMiB: await workerMemory(stack, "RssAnon"),
    rssEndMiB: await workerMemory(stack, "VmRSS"),
    supervisorAnonMiB: await memoryKiB(supervisor, "RssAnon") / 1024,
    errors,
  };
}

/** The soak through a stack that trusts 127.0.0.1, from distinct clients. */
async function soakManyClients(): Promise<Soak> {
  const stack = await startStack({ TRUSTED_PROXIES: "127.0.0.1" });
  try {
    return await soak(stack, true);
  } finally {
    await stack.stop();
  }
}

/** Medians per server and connection count. */
function tableOf(samples: Samples, peakRss: Map<string, number>): Row[] {
  return [...samples.entries()].map(([key, xs]) => {
    const [name, c] = key.split("|");
    return {
      name,
      c: Number(c),
      rps: median(xs.map((x) => x.rps)),
      p50: median(xs.map((x) => x.p50)),
      p99: median(xs.map((x) => x.p99)),
      cpuUs: median(xs.map((x) => x.cpuUs)),
      errors: xs.reduce((a, x) => a + x.errors, 0),
      rssMiB: peakRss.get(name) ?? 0,
    };
  });
}

/**
 * The median of per-round ratios a ÷ b: a round's runs are back to back,
 * so a slow minute on the shared machine hits both sides.
 */
function paired(
  samples: Samples,
  [a, b, c]: [string, string, number],
  field: "rps" | "p99" | "cpuUs",
): number {
  const xs = samples.get(`${a}|${c}`)!, ys = samples.get(`${b}|${c}`)!;
  return median(xs.map((x, i) => x[field] / ys[i][field]));
}

/** No targets: the cost of each layer in CPU time, steadier than req/s. */
function cpuRatios(samples: Samples): [string, number][] {
  return [
    ["start ÷ bare Deno.serve, TCP (c64)", ["start", "bare", 64]],
    ["stack ÷ nginx + bare Deno.serve (c64)", ["stack", "nginx+bare", 64]],
    ["stack ÷ nginx return 200 (c64)", ["stack", "nginx", 64]],
  ].map(([figure, pair]) => [
    figure as string,
    paired(samples, pair as [string, string, number], "cpuUs"),
  ]);
}

// Each target's text and test come from one number.
const atLeast = (n: number) => ({
  target: `>= ${n}`,
  ok: (v: number) => v >= n,
});
const atMost = (n: number) => ({
  target: `<= ${n}`,
  ok: (v: number) => v <= n,
});
const exactly = (n: number) => ({
  target: `= ${n}`,
  ok: (v: number) => v === n,
});

/** The figures with targets that the rounds give (`--quick` has only these). */
function headline(samples: Samples, startup: number): Target[] {
  const rps = (a: string, b: string, c: number) =>
    paired(samples, [a, b, c], "rps");
  return [
    {
      figure: "stack ÷ nginx return 200 (req/s, c64)",
      what: "the whole stack against nginx answering by itself: its ceiling",
      value: rps("stack", "nginx", 64),
      ...atLeast(0.35),
    },
    {
      figure: "stack ÷ nginx + bare Deno.serve (req/s, c64)",
      what: "what the service and supervisor cost over the same two hops",
      value: rps("stack", "nginx+bare", 64),
      ...atLeast(0.9),
    },
    {
      figure: "deno task start ÷ bare Deno.serve, TCP (req/s, c64)",
      what: "the service alone against a handler that only answers",
      value: rps("start", "bare", 64),
      ...atLeast(0.85),
    },
    {
      figure: "stack start to first 200 (ms)",
      what: "median of three: spawning the stack to its first answer",
      value: startup,
      ...atMost(1000),
    },
  ];
}

/** The figures with targets. */
function targets(
  samples: Samples,
  table: Row[],
  soaked: Soak,
  many: Soak,
  startup: number,
): Target[] {
  const soakM = (soaked.requests / 1e6).toFixed(2);
  return [
    ...headline(samples, startup),
    {
      figure: "stack ÷ nginx + bare Deno.serve (req/s, c256)",
      what: "the same at 256 connections",
      value: paired(samples, ["stack", "nginx+bare", 256], "rps"),
      ...atLeast(0.9),
    },
    {
      figure: "stack p99 ÷ nginx return 200 p99 (c256)",
      what: "the stack's tail latency against nginx alone's",
      value: paired(samples, ["stack", "nginx", 256], "p99"),
      ...atMost(3),
    },
    {
      figure: "errors of any kind (all runs + soak)",
      what: "non-2xx answers and socket errors wrk saw",
      value: table.reduce((a, r) => a + r.errors, 0) + soaked.errors +
        many.errors,
      ...exactly(0),
    },
    // What a worker and the supervisor add to the cgroup's charge: their
    // anonymous memory (RssAnon). stack_config.ts's workerMiB counts a
    // worker's, its page tables and half an nginx worker (~8 MiB more).
    {
      figure: `worker memory after ${soakM}M requests (MiB, RssAnon)`,
      what: "a worker's anonymous memory after the costliest mix",
      value: soaked.anonEndMiB,
      ...atMost(56),
    },
    {
      figure: `worker memory after ${
        (many.requests / 1e6).toFixed(2)
      }M requests from distinct clients (MiB, RssAnon)`,
      what: "the same when every request is also a new client",
      value: many.anonEndMiB,
      ...atMost(56),
    },
    {
      figure: "worker memory growth over the soak's last half (MiB)",
      what: "a leak, or a heap that V8 lets grow further, would show here",
      value: soaked.anonEndMiB - soaked.anonHalfMiB,
      ...atMost(2),
    },
    {
      figure: "supervisor memory after the soaks (MiB, RssAnon)",
      what: "the supervisor's own memory after relaying both soaks' logs",
      value: Math.max(soaked.supervisorAnonMiB, many.supervisorAnonMiB),
      ...atMost(32),
    },
  ];
}

// Prints the tables; the number of targets missed.
function printReport(
  table: Row[],
  ratios: Target[],
  cpu: [string, number][],
): number {
  console.log(
    "\n| server | conns | req/s | p50 ms | p99 ms | CPU µs/req | errors | peak worker RSS MiB |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of table) {
    const rss = r.rssMiB ? r.rssMiB.toFixed(1) : "-";
    console.log(
      `| ${r.name} | ${r.c} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${
        r.p99.toFixed(2)
      } | ${r.cpuUs.toFixed(1)} | ${r.errors} | ${rss} |`,
    );
  }
  console.log("\n| figure | value | target | met | what it measures |");
  console.log("|---|---:|---|---|---|");
  for (const r of ratios) {
    const v = Number.isInteger(r.value)
      ? r.value
      : r.value.toFixed(r.value < 10 ? 3 : 1);
    const met = r.ok(r.value) ? "yes" : "NO";
    console.log(`| ${r.figure} | ${v} | ${r.target} | ${met} | ${r.what} |`);
  }
  console.log("\n| CPU time per request | ratio |");
  console.log("|---|---:|");
  for (const [figure, value] of cpu) {
    console.log(`| ${figure} | ${value.toFixed(3)} |`);
  }
  const missed = ratios.filter((r) => !r.ok(r.value)).length;
  if (missed > 0) console.log(`\nbench: ${missed} target(s) missed`);
  return missed;
}

async function writeResults(results: {
  machine: Awaited<ReturnType<typeof machineInfo>>;
  startup: number;
  soaked: Soak;
  table: Row[];
  samples: Samples;
  cpu: [string, number][];
  ratios: Target[];
}) {
  const { machine, startup, soaked, table, samples, cpu, ratios } = results;
  const json = {
    machine,
    duration_s: DURATION,
    rounds: ROUNDS,
    rate_limit: "off (RATE_LIMIT=0)",
    access_log: "on",
    nginx_return_200: `worker_processes ${WORKERS} (one per core)`,
    startup_ms: startup,
    soak: soaked,
    table,
    runs: Object.fromEntries(samples),
    cpu_ratios: Object.fromEntries(cpu),
    ratios: ratios.map(({ figure, what, value, target, ok }) => ({
      figure,
      what,
      value,
      target,
      met: ok(value),
    })),
  };
  await Deno.mkdir(RESULTS, { recursive: true });
  await Deno.writeTextFile(
    `${RESULTS}/latest.json`,
    JSON.stringify(json, null, 2) + "\n",
  );
  await Deno.writeTextFile(`${RESULTS}/latest.svg`, svg(table));
  console.log(`\nwrote ${RESULTS}/latest.json and latest.svg`);
}

// The whole run; the number of targets missed.
async function main(): Promise<number> {
  const machine = await machineInfo();
  console.log(`machine: ${JSON.stringify(machine)}`);
  const startup = await startupMs();
  console.log(`stack start to first 200: ${startup.toFixed(0)} ms`);
  const servers: Server[] = [
    await startStack(),
    await startNginx("bare"),
    await startNginx("return"),
    await startTcp("start"),
    await startTcp("bare"),
  ];
  const [stack] = servers;
  let samples: Samples;
  const peakRss = new Map<string, number>();
  try {
    samples = await measureRounds(servers);
    for (const s of servers.filter((s) => s.name !== "nginx")) {
      peakRss.set(s.name, await workerMemory(s, "VmHWM"));
    }
  } finally {
    // The full run goes on with the stack: the soak.
    for (const s of servers.slice(QUICK ? 0 : 1)) await s.stop();
  }
  const table = tableOf(samples, peakRss);
  const cpu = cpuRatios(samples);
  if (QUICK) {
    console.log("\n--quick: bench/results not written (the full run's)");
    return printReport(table, headline(samples, startup), cpu);
  }
  let soaked: Soak;
  try {
    soaked = await soak(stack);
  } finally {
    await stack.stop();
  }
  const many = await soakManyClients();
  const ratios = targets(samples, table, soaked, many, startup);
  const missed = printReport(table, ratios, cpu);
  await writeResults({ machine, startup, soaked, table, samples, cpu, ratios });
  return missed;
}

if (import.meta.main) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      console.log(`${signal}: stopping every server and removing their files`);
      await cleanUp();
      Deno.exit(130);
    });
  }
  let missed = 1;
  try {
    missed = await main();
  } finally {
    await cleanUp();
  }
  // A target missed is an exit code, not only a NO in a table.
  Deno.exit(missed > 0 ? 1 : 0);
}
