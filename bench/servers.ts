/**
 * The servers the benchmark measures, each started on a free port:
 *   stack        the production stack as shipped (deno task stack)
 *   nginx+bare   the same rendered nginx config in front of bare Deno.serve
 *   nginx        the same config answering `return 200` by itself, with
 *                one nginx process per core (nginx at its best)
 *   start        the service alone on TCP (deno task start)
 *   bare         bare Deno.serve on TCP, byte-identical answers
 *
 * @module
 */
import { loadStackConfig, type StackConfig } from "../stack/stack_config.ts";
import { renderNginxConfig } from "../stack/nginx_config.ts";
import { runtimeLayout, workerSocket } from "../stack/runtime_dir.ts";
import {
  asStackUser,
  giveToStackUser,
  STACK_UID,
} from "../testing/stack_command.ts";

import { freePort, PROJECT_DIR } from "../testing/net.ts";
import { zoneNames } from "../service/tz_names.ts";

export { freePort, PROJECT_DIR };

/** Deno workers per server: one per core, as the stack defaults to. */
export const WORKERS: number = navigator.hardwareConcurrency;

/** A server under measurement. */
export interface Server {
  /** Its name in the results table. */
  name: string;
  /** The URL wrk drives. */
  url: string;
  /** pids of the Deno processes that answer requests. */
  denoPids: () => Promise<number[]>;
  /** The stack's: the supervisor's pid. */
  supervisorPids?: () => Promise<number[]>;
  /** The processes it started; with their descendants, the server's CPU. */
  roots: number[];
  /** Stops it gracefully and waits for its processes. */
  stop: () => Promise<void>;
}

/**
 * wrk's script and arguments for the traffic that costs a worker most
 * memory (bench/costly_mix.lua): `/time?tz=` in every zone, and with
 * `many` each request from another client.
 */
export function costlyMix(
  many = false,
): { script: string; scriptArgs: string[] } {
  const zones = zoneNames().map(encodeURIComponent);
  return {
    script: new URL("costly_mix.lua", import.meta.url).pathname,
    scriptArgs: many ? [...zones, "many"] : zones,
  };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", pattern],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(
    Number,
  );
}

/** Waits until `url` answers 2xx, or throws after `ms`. */
export async function waitHttp(url: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not yet.
    }
    await sleep(20);
  }
  throw new Error(`${url} did not answer`);
}

// What to undo when the run ends, fails or is interrupted (Ctrl-C): every
// server started and every directory made, newest first.
const cleanups: (() => Promise<unknown>)[] = [];

/** Stops every server started and removes every directory made so far. */
export async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
}

/** A temporary directory that {@linkcode cleanUp} removes. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  cleanups.push(() => Deno.remove(dir, { recursive: true }));
  return dir;
}

/**
 * Starts a server process. Its output goes to /dev/null: reading it would
 * load the very machine being measured.
 */
export function spawn(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  cwd: string = PROJECT_DIR,
): Deno.ChildProcess {
  const child = new Deno.Command(cmd, {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  })
    .spawn();
  cleanups.push(stopper(child));
  return child;
}

/** A function that signals `child` and waits for it to exit. */
export function stopper(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
): () => Promise<void> {
  return async () => {
    try {
      child.kill(signal);
    } catch {
      // Gone.
    }
    await child.status;
  };
}

/**
 * The stack with these settings, no rate limit, and a runtime directory of
 * its own under a fresh directory named `prefix`: `deno task stack`, or as
 * root the image's command as another user (testing/stack_command.ts); from
 * this checkout or another (`dir`, an older commit's worktree).
 */
export async function spawnStack(
  prefix: string,
  env: Record<string, string>,
  dir: string = PROJECT_DIR,
): Promise<{ child: Deno.ChildProcess; runtimeDir: string }> {
  // The stack creates its runtime directory itself, where its user may.
  const base = await tempDir(prefix);
  await Deno.chmod(base, 0o755);
  if (dir === PROJECT_DIR) await giveToStackUser(base);
  const runtimeDir = `${base}/run`;
  const settings = { RUNTIME_DIR: runtimeDir, RATE_LIMIT: "0", ...env };
  // An older commit's worktree (`dir`) runs as that commit did.
  const root = dir === PROJECT_DIR && STACK_UID !== Deno.uid() &&
    await asStackUser(settings);
  const child = root
    ? spawn(root.cmd, root.args, root.env)
    : spawn(Deno.execPath(), ["task", "-q", "stack"], settings, dir);
  return { child, runtimeDir };
}

/**
 * `deno task stack` on a free port and a fresh runtime directory, with
 * extra settings (`TRUSTED_PROXIES` for the many-clients soak), from this
 * checkout or another one (`dir`, an older commit's worktree).
 */
export async function startStack(
  env: Record<string, string> = {},
  dir: string = PROJECT_DIR,
): Promise<Server> {
  const port = freePort();
  const { child, runtimeDir } = await spawnStack("bench-stack-", {
    PORT: String(port),
    ...env,
  }, dir);
  await waitHttp(`http://127.0.0.1:${port}/healthz`);
  const sockets = runtimeLayout(runtimeDir).sockets;
  return {
    name: "stack",
    url: `http://127.0.0.1:${port}/`,
    denoPids: () => pgrep(`allow-net=unix:${sockets}/worker-[0-9]+.sock `),
    // Only the supervisor may write the whole runtime directory.
    supervisorPids: () => pgrep(`allow-write=${runtimeDir} `),
    roots: [child.pid],
    stop: stopper(child),
  };
}

/**
 * The stack's own nginx config, rendered by the same code; with `return
 * 200` in place of the proxy for the nginx-alone anchor.
 */
function benchNginxConfig(mode: "bare" | "return", config: StackConfig) {
  // As root, nginx's workers would drop to nobody, who may not reach the
  // bare workers' sockets.
  const text = (Deno.uid() === 0 ? "user root root;\n" : "") +
    renderNginxConfig(config, false);
  if (mode === "bare") return text;
  const body = JSON.stringify({
    timestamp: new Date().toISOString().replace("Z", "+00:00"),
    ip: "127.0.0.1",
  });
  return text.replace(
    "proxy_pass http://workers;",
    `default_type application/json;\n      return 200 '${body}';`,
  );
}

/** Bare workers on the runtime directory's sockets, once all listen. */
async function startBareWorkers(
  runtimeDir: string,
  count: number,
): Promise<Deno.ChildProcess[]> {
  const workers = Array.from(
    { length: count },
    (_, i) =>
      spawn(Deno.execPath(), ["run", "-A", "bench/bare_server.ts"], {
        SOCKET: workerSocket(runtimeDir, i),
      }),
  );
  for (let i = 0; i < count; i++) {
    while (!(await exists(workerSocket(runtimeDir, i)))) await sleep(20);
  }
  return workers;
}

/** nginx with the stack's config, in front of bare workers or alone. */
export async function startNginx(mode: "bare" | "return"): Promise<Server> {
  const port = freePort();
  const runtimeDir = await tempDir(`bench-${mode}-`);
  // The `return 200` anchor runs nginx at its best, one process per core;
  // in front of workers it runs as the stack does.
  const env: Record<string, string> = {
    PORT: String(port),
    RUNTIME_DIR: runtimeDir,
    RATE_LIMIT: "0",
    ...(mode === "return" ? { NGINX_WORKERS: String(WORKERS) } : {}),
  };
  const config = loadStackConfig((n) => env[n]);
  const layout = runtimeLayout(runtimeDir);
  for (const d of [layout.sockets, layout.nginx, layout.public]) {
    await Deno.mkdir(d);
  }
  await Deno.writeTextFile(layout.nginxConf, benchNginxConfig(mode, config));
  // As the stack does: nginx starts once every worker listens.
  const workers = mode === "bare"
    ? await startBareWorkers(runtimeDir, config.workers)
    : [];
  // In a session of its own, as stack.ts starts it: where the kernel groups
  // scheduling by session (autogroup), nginx then gets a group's share of
  // the CPU instead of one thread's among all the workers' and wrk's.
  // It dies with the bench, however the bench ends (pdeathsig).
  const nginx = spawn("setsid", [
    "setpriv",
    "--pdeathsig",
    "SIGTERM",
    "--",
    "nginx",
    "-c",
    layout.nginxConf,
    "-e",
    "stderr",
  ]);
  await waitHttp(`http://127.0.0.1:${port}/`);
  return {
    name: mode === "bare" ? "nginx+bare" : "nginx",
    url: `http://127.0.0.1:${port}/`,
    denoPids: () => Promise.resolve(workers.map((w) => w.pid)),
    roots: [nginx.pid, ...workers.map((w) => w.pid)],
    stop: async () => {
      await stopper(nginx, "SIGQUIT")();
      for (const w of workers) await stopper(w)();
    },
  };
}

/** The service (`deno task start`) or the bare server, alone on TCP. */
export async function startTcp(name: "start" | "bare"): Promise<Server> {
  const port = freePort();
  const child = name === "start"
    ? spawn(Deno.execPath(), ["task", "-q", "start"], {
      PORT: String(port),
      HOST: "127.0.0.1",
    })
    : spawn(Deno.execPath(), ["run", "-A", "bench/bare_server.ts"], {
      PORT: String(port),
    });
  await waitHttp(`http://127.0.0.1:${port}/`);
  return {
    name,
    url: `http://127.0.0.1:${port}/`,
    denoPids: () =>
      name === "start"
        ? pgrep(`allow-net=127.0.0.1:${port} `)
        : Promise.resolve([child.pid]),
    roots: [child.pid],
    stop: stopper(child),
  };
}
