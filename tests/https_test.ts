// HTTPS as it is deployed on one machine: Caddy terminates TLS in front of
// the stack (deploy/caddy/Caddyfile), with its own local CA instead of
// ACME, and the stack trusts it through TRUSTED_PROXIES.
import assert from "node:assert/strict";
import {
  listening,
  needs,
  onFreePort,
  run,
  type Running,
  stdoutOf,
  withStack,
  withTempDir,
} from "./test_util.ts";

const ready = needs("nginx", "caddy", "curl");
const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));
// Caddy dials the stack from here; the client comes from another address.
const CADDY = "127.0.0.1";
const CLIENT = "127.0.0.2";

/**
 * The shipped Caddyfile, on `port` in front of a stack on `stackPort`: on
 * loopback only, certificates from Caddy's local CA, no port 80, no admin
 * API, nothing written outside `dir` (HOME and XDG_* point there).
 */
function caddyfile(port: number, stackPort: number): string {
  const site = read("./deploy/caddy/Caddyfile");
  assert.equal(site.split("127.0.0.1:8080").length, 2, "one upstream");
  return `{
	admin off
	auto_https disable_redirects
	skip_install_trust
	local_certs
	default_bind ${CADDY}
	https_port ${port}
	servers {
		protocols h1 h2
	}
}
${site.replace("127.0.0.1:8080", `127.0.0.1:${stackPort}`)}`;
}

/** Runs `body` with Caddy on a free port in front of `stackPort`. */
function withCaddy(
  stackPort: number,
  body: (https: (...args: string[]) => Promise<string>) => Promise<void>,
): Promise<void> {
  return withTempDir((dir) =>
    onFreePort(async (port) => {
      await Deno.writeTextFile(`${dir}/Caddyfile`, caddyfile(port, stackPort));
      const caddy = await listening(
        run("caddy", ["run", "--config", `${dir}/Caddyfile`], {
          env: {
            HOME: dir,
            XDG_DATA_HOME: `${dir}/data`,
            XDG_CONFIG_HOME: `${dir}/config`,
          },
        }),
        /"certificate obtained successfully"/,
      );
      const ca = `${dir}/data/caddy/pki/authorities/local/root.crt`;
      try {
        await body((...args) =>
          stdoutOf("curl", [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            ca,
            "--interface",
            CLIENT,
            "--resolve",
            `time.example.org:${port}:${CADDY}`,
            ...args.slice(0, -1),
            `https://time.example.org:${port}${args.at(-1)}`,
          ])
        );
      } finally {
        await stop(caddy);
      }
    })
  );
}

async function stop(proc: Running): Promise<void> {
  proc.child.kill("SIGTERM");
  await proc.child.status;
  await proc.drained;
}

Deno.test({
  name:
    "behind Caddy the stack answers over HTTPS with HTTP/2 and reports the client's address, not Caddy's",
  ignore: !ready,
  fn: () =>
    withStack(
      { TRUSTED_PROXIES: `${CADDY}/32` },
      (stack) =>
        withCaddy(stack.port, async (https) => {
          const [body, version] = (await https(
            "--http2",
            "-w",
            "\n%{http_version} %{response_code}",
            "/",
          )).split("\n");
          assert.equal(version, "2 200");
          assert.equal(JSON.parse(body).ip, CLIENT);
          // A client cannot pass itself off as another through Caddy.
          const forged = await https(
            "-H",
            "Accept: application/json",
            "-H",
            "X-Forwarded-For: 203.0.113.9",
            "/ip",
          );
          assert.deepEqual(JSON.parse(forged), { ip: CLIENT, family: "ipv4" });
        }),
    ),
});

Deno.test("docs/deployment.md shows the Caddyfile the test runs", () => {
  const site = read("./deploy/caddy/Caddyfile").split("\n")
    .filter((l) => !l.startsWith("#")).join("\n");
  assert.ok(read("./docs/deployment.md").includes("```text\n" + site + "```"));
});
