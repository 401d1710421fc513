/**
 * How much of `/time`'s NTP-style `delay` the stack's nginx adds: the same
 * worker asked in alternation through nginx (TCP) and straight on its Unix
 * socket, with one keep-alive connection each, by one client.
 *
 * `deno run -A bench/nginx_delay.ts` (needs nginx). The delay excludes the
 * worker's own time (t2 − t1), so what remains is the path to and from it.
 *
 * @module
 */
import { workerSocket } from "../stack/runtime_dir.ts";
import { cleanUp, freePort, spawnStack, stopper, waitHttp } from "./servers.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3000);
const WARMUP = 300;

const now = () => performance.timeOrigin + performance.now();

async function delayOf(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient },
): Promise<number> {
  const t0 = now();
  const res = await fetch(`${url}/time?t0=${t0}`, init);
  const { t1, t2 } = await res.json();
  const t3 = now();
  return (t3 - t0) - (t2 - t1);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

// One worker, so that both paths reach the same process.
const port = freePort();
const { child, runtimeDir } = await spawnStack("bench-delay-", {
  PORT: String(port),
  WORKERS: "1",
});
const stop = stopper(child);
const stack = { url: `http://127.0.0.1:${port}` };
const client = Deno.createHttpClient({
  proxy: { transport: "unix", path: workerSocket(runtimeDir, 0) },
});
try {
  await waitHttp(`${stack.url}/healthz`);
  const direct = { client, headers: { "x-real-ip": "127.0.0.1" } };
  const viaNginx: number[] = [];
  const viaSocket: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const a = await delayOf(stack.url, {});
    const b = await delayOf("http://worker", direct);
    if (i >= WARMUP) {
      viaNginx.push(a);
      viaSocket.push(b);
    }
  }
  const row = (name: string, v: number[]) =>
    `${name.padEnd(22)} p50 ${percentile(v, 0.5).toFixed(3)} ms  p90 ${
      percentile(v, 0.9).toFixed(3)
    } ms`;
  console.log(`/time delay, ${ROUNDS} exchanges each, alternating:`);
  console.log(row("through nginx (TCP)", viaNginx));
  console.log(row("worker socket direct", viaSocket));
  console.log(
    `nginx adds (p50): ${
      (percentile(viaNginx, 0.5) - percentile(viaSocket, 0.5)).toFixed(3)
    } ms`,
  );
} finally {
  client.close();
  await stop();
  await cleanUp();
}
