/**
 * `deno run -A bench/nginx_instructions.ts [DIR]`: what nginx's config costs
 * per request in instructions (valgrind's callgrind), which a shared machine
 * does not blur as it does req/s. nginx runs the stack's rendered config of
 * this checkout (and of an older commit's worktree DIR) with `stub_status`
 * in place of the workers, so that every phase runs (the rate limit too),
 * behind a trusted proxy with a two-hop `X-Forwarded-For` and without one.
 * Two runs of 200 and 1,200 requests; the difference over 1,000 is the cost
 * of one request, start-up left out.
 *
 * @module
 */
import { freePort } from "../testing/net.ts";

const REQUESTS = [200, 1200];
const SETUPS: [string, Record<string, string>, Record<string, string>][] = [
  ["proxy", { TRUSTED_PROXIES: "127.0.0.1,10.0.0.0/8" }, {
    "x-forwarded-for": "203.0.113.7, 10.0.0.2",
  }],
  ["plain", {}, {}],
];

// Total instructions of one nginx run that answers `count` requests.
async function instructions(
  dir: string,
  env: Record<string, string>,
  headers: Record<string, string>,
  count: number,
): Promise<number> {
  const { renderNginxConfig } = await import(`${dir}/stack/nginx_config.ts`);
  const { loadStackConfig } = await import(`${dir}/stack/stack_config.ts`)
    .catch(() => import(`${dir}/service/config.ts`));
  const { runtimeLayout } = await import(`${dir}/stack/runtime_dir.ts`);
  const port = freePort();
  const root = await Deno.makeTempDir({ prefix: "bench-instructions-" });
  try {
    const all: Record<string, string> = {
      PORT: String(port),
      RUNTIME_DIR: root,
      RATE_LIMIT: "60000",
      ...env,
    };
    const layout = runtimeLayout(root);
    for (const d of [layout.sockets, layout.nginxTemp, layout.public]) {
      await Deno.mkdir(d, { recursive: true });
    }
    const text = renderNginxConfig(loadStackConfig((n: string) => all[n]), {
      ipv6: false,
    }).replaceAll("proxy_pass http://workers;", "stub_status;")
      .replaceAll("/dev/stdout", `${root}/access.log`)
      .replace("daemon off;", "daemon off;\nmaster_process off;");
    await Deno.writeTextFile(layout.nginxConf, text);
    const out = `${root}/callgrind.out`;
    const nginx = new Deno.Command("valgrind", {
      args: [
        "--tool=callgrind",
        "--smc-check=all-non-file",
        `--callgrind-out-file=${out}`,
        ...["nginx", "-c", layout.nginxConf, "-e", "stderr"],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const url = `http://127.0.0.1:${port}/ip`;
    for (let ready = false; !ready;) {
      ready = await fetch(url, { headers }).then((r) => r.text(), () => "")
        .then((t) => t !== "");
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < count; i++) {
      await (await fetch(url, { headers })).text();
    }
    nginx.kill("SIGQUIT");
    await nginx.status;
    const summary = (await Deno.readTextFile(out)).match(/^summary: (\d+)/m);
    return Number(summary![1]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const dirs = [new URL("..", import.meta.url).pathname, ...Deno.args];
for (const [name, env, headers] of SETUPS) {
  for (const dir of dirs) {
    const totals = [];
    for (const count of REQUESTS) {
      totals.push(await instructions(dir, env, headers, count));
    }
    const perRequest = (totals[1] - totals[0]) / (REQUESTS[1] - REQUESTS[0]);
    console.log(`${name} ${dir}: ${Math.round(perRequest)} instructions`);
  }
}
