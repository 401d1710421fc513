// The shipping files, checked here where Docker and GitHub cannot run: the
// Kubernetes manifests against the Kubernetes schemas, and the facts that
// the Dockerfile, the workflow, the manifests and the stack must share.
import { restoreWarnings } from "./quiet_punycode.ts";
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Service } from "kubernetes-models/v1/Service";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import denoJson from "../deno.json" with { type: "json" };
import { ROUTES } from "../service/app.ts";
import { REQUEST_ID_PATTERN } from "../service/answer.ts";
import { DEFAULTS, SERVICE_ENV } from "../service/config.ts";
import { freePort, run, stdoutOf } from "./test_util.ts";
import { bundleArgs } from "../stack/supervisor.ts";

restoreWarnings();

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** The Dockerfile's instructions, continuation lines joined. */
function dockerfile(): { op: string; args: string }[] {
  return read("./Dockerfile").replace(/\\\n/g, " ").split("\n")
    .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
    .map((l) => ({
      op: l.split(/\s+/)[0].toUpperCase(),
      args: l.slice(l.indexOf(" ") + 1).trim(),
    }));
}

/** Instructions of the final stage only. */
function finalStage() {
  const all = dockerfile();
  const from = all.map((i) => i.op).lastIndexOf("FROM");
  return all.slice(from);
}

function dockerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of finalStage().filter((i) => i.op === "ENV")) {
    for (const [, k, v] of args.matchAll(/(\w+)=(\S+)/g)) env[k] = v;
  }
  return env;
}

const manifests = Array.from(
  Deno.readDirSync(new URL("./deploy/", ROOT)),
)
  .filter((e) => e.name.endsWith(".yaml") && e.name !== "kustomization.yaml")
  .flatMap((e) =>
    parseAllDocuments(read(`./deploy/${e.name}`)).map((d) => d.toJS())
  );
const byKind = (kind: string) => manifests.find((m) => m.kind === kind);
const deployment = byKind("Deployment");
const container = deployment.spec.template.spec.containers[0];
const containerEnv = Object.fromEntries(
  container.env.map((e: { name: string; value: string }) => [e.name, e.value]),
);

Deno.test("every Kubernetes manifest is valid against the Kubernetes schemas", () => {
  const models: Record<string, new (d: never) => { validate(): void }> = {
    Deployment,
    Service,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
  };
  assert.deepEqual(
    manifests.map((m) => m.kind).sort(),
    Object.keys(models).sort(),
  );
  for (const m of manifests) {
    new models[m.kind](m as never).validate();
  }
  // And a broken one is caught, so the check above means something.
  const broken = structuredClone(deployment);
  broken.spec.template.spec.containers[0].ports[0].containerPort = "eighty";
  assert.throws(() => new Deployment(broken).validate());
});

Deno.test("the port agrees across stack, Dockerfile, manifests and Service", () => {
  const port = DEFAULTS.stackPort;
  assert.equal(finalStage().find((i) => i.op === "EXPOSE")?.args, String(port));
  assert.equal(dockerEnv().PORT, String(port));
  assert.equal(container.ports[0].containerPort, port);
  assert.equal(containerEnv.PORT, String(port));
  const service = byKind("Service");
  assert.equal(service.spec.ports[0].targetPort, container.ports[0].name);
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
  assert.equal(
    byKind("HorizontalPodAutoscaler").spec.scaleTargetRef.name,
    deployment.metadata.name,
  );
});

Deno.test("the healthcheck and every probe ask the stack's /healthz", () => {
  assert.ok(ROUTES.includes("/healthz"));
  const health = finalStage().find((i) => i.op === "HEALTHCHECK")!.args;
  assert.match(health, /\/healthz/);
  assert.match(health, /Deno\.env\.get\('PORT'\)/, "follows PORT");
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    assert.equal(container[probe].httpGet.path, "/healthz", probe);
    assert.equal(container[probe].httpGet.port, "http", probe);
  }
});

Deno.test("the image runs the stack supervisor as a non-root user under tini", () => {
  const stage = finalStage();
  const cmd = JSON.parse(stage.find((i) => i.op === "CMD")!.args);
  assert.deepEqual(cmd, ["deno", "task", "--quiet", "stack"]);
  assert.match(denoJson.tasks.stack, /\bstack\.ts$/);
  assert.deepEqual(JSON.parse(stage.find((i) => i.op === "ENTRYPOINT")!.args), [
    "/usr/bin/tini",
    "--",
  ]);
  const user = stage.findLast((i) => i.op === "USER")!;
  assert.equal(user.args, "ip-timestamp:ip-timestamp");
  const ops = stage.map((i) => i.op);
  assert.ok(
    ops.lastIndexOf("RUN") < ops.indexOf("USER"),
    "USER after every RUN",
  );
  assert.match(
    stage.find((i) => i.op === "RUN" && i.args.includes("useradd"))!.args,
    /--uid 10001/,
  );
  assert.equal(deployment.spec.template.spec.securityContext.runAsUser, 10001);
  assert.equal(
    deployment.spec.template.spec.securityContext.runAsNonRoot,
    true,
  );
  assert.equal(stage.find((i) => i.op === "STOPSIGNAL")?.args, "SIGTERM");
});

Deno.test("the runtime directory is the one writable place, in image and pod", () => {
  const dir = dockerEnv().RUNTIME_DIR;
  assert.equal(dir, DEFAULTS.runtimeDir);
  assert.equal(containerEnv.RUNTIME_DIR, dir);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
  const mount = container.volumeMounts.find((m: { name: string }) =>
    m.name === "runtime"
  );
  assert.ok(
    dir.startsWith(mount.mountPath + "/"),
    `${dir} under ${mount.mountPath}`,
  );
});

Deno.test("the image's build stage bundles main.ts as the stack does", () => {
  // So that esbuild is in the image's DENO_DIR, which is read-only at run.
  const args = bundleArgs("/dev/null");
  args[args.length - 1] = "main.ts";
  assert.ok(
    dockerfile().some((i) =>
      i.op === "RUN" && i.args.includes(`deno ${args.join(" ")}`)
    ),
    `no RUN with deno ${args.join(" ")}`,
  );
});

Deno.test("one Deno version across Dockerfile, workflow and .ci/run", () => {
  const docker = read("./Dockerfile").match(/^ARG DENO_VERSION=(\S+)$/m)![1];
  const workflow = read("./.github/workflows/ci.yml");
  assert.equal(workflow.match(/^ {2}DENO_VERSION: (\S+)$/m)![1], docker);
  assert.match(
    workflow,
    new RegExp(
      `image: denoland/deno:debian-${docker.replaceAll(".", "\\.")}\\n`,
    ),
  );
  assert.equal(read("./.ci/run").match(/^DENO_VERSION=(\S+)$/m)![1], docker);
});

Deno.test("the executable's flags serve its own address and refuse any other", async () => {
  const port = freePort();
  const env = { HOST: "127.0.0.1", PORT: String(port) };
  const target = "x86_64-pc-windows-msvc";
  const flags = (await stdoutOf(
    Deno.execPath(),
    ["task", "-q", "flags", "compile"],
    { env: { ...env, TARGET: target } },
  )).trim().split(" ");
  const allow = flags.filter((f) => f.startsWith("--allow"));
  assert.deepEqual(allow, [
    `--allow-env=${SERVICE_ENV.join(",")}`,
    `--allow-net=127.0.0.1:${port}`,
  ]);
  assert.deepEqual(flags.filter((f) => !allow.includes(f)), [
    "--frozen",
    "--target",
    target,
    "--output",
    `dist/ip-timestamp-${target}`,
  ]);
  // Offline, deno compile cannot fetch its runtime: run main.ts as the
  // executable does, with exactly those flags.
  const other = run(Deno.execPath(), ["run", ...allow, "main.ts"], {
    env: { ...env, PORT: String(port + 1) },
  });
  assert.equal((await other.child.status).code, 2);
  await other.drained;
  assert.match(other.stderr.join("\n"), /rebuild the executable/);
  const own = run(Deno.execPath(), ["run", ...allow, "main.ts"], { env });
  try {
    await own.waitFor(/"msg":"listening"/);
    const res = await fetch(`http://127.0.0.1:${port}/ip`);
    assert.equal(await res.text(), "127.0.0.1\n");
  } finally {
    own.child.kill("SIGTERM");
    await own.child.status;
    await own.drained;
  }
});

Deno.test("the compile task and the workflow build every target with those flags", () => {
  assert.match(
    denoJson.tasks.compile,
    /\$\(deno task -q flags compile\) main\.ts$/,
  );
  assert.match(denoJson.tasks.start, /\$\(deno task -q flags\) main\.ts$/);
  const workflow = read("./.github/workflows/ci.yml");
  assert.match(workflow, /run: deno task compile\n/);
  for (
    const t of [
      "x86_64-unknown-linux-gnu",
      "aarch64-unknown-linux-gnu",
      "x86_64-apple-darwin",
      "aarch64-apple-darwin",
      "x86_64-pc-windows-msvc",
    ]
  ) {
    assert.ok(workflow.includes(`- ${t}\n`), t);
  }
});

Deno.test("the workflow is least-privilege, pinned, and runs on PRs, main and tags", () => {
  const workflow = read("./.github/workflows/ci.yml");
  assert.match(workflow, /^permissions:\n {2}contents: read$/m);
  assert.match(workflow, /^ {2}pull_request:$/m);
  assert.match(workflow, /branches: \[main\]/);
  assert.match(workflow, /tags: \["v\*"\]/);
  const uses = [...workflow.matchAll(/uses: (\S+)(.*)$/gm)];
  assert.ok(uses.length > 10);
  // Each action at one commit and one version everywhere: an upgrade
  // done in one job but not another, or a comment bumped without its
  // commit, shows as two pins. (Whether a commit is the tag it names
  // takes GitHub; this runs offline.)
  const pins = new Map<string, Set<string>>();
  for (const [, ref, comment] of uses) {
    assert.match(ref, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, ref);
    assert.match(comment, /^ # v\d+\.\d+\.\d+$/, ref);
    const [action, sha] = ref.split("@");
    pins.set(action, (pins.get(action) ?? new Set()).add(sha + comment));
    pins.set(sha, (pins.get(sha) ?? new Set()).add(action + comment));
  }
  for (const [key, seen] of pins) {
    assert.equal(seen.size, 1, `${key} pinned as ${[...seen].join(", ")}`);
  }
});

Deno.test("the image context carries no tests, bench output or git history", () => {
  const ignore = read("./.dockerignore").split("\n");
  assert.equal(
    ignore.find((l) => l && !l.startsWith("#")),
    "*",
    "deny by default",
  );
  for (const line of ["**/*_test.ts"]) {
    assert.ok(ignore.includes(line), line);
  }
  for (const allowed of ignore.filter((l) => l.startsWith("!"))) {
    assert.doesNotMatch(allowed, /bench|\.git|test|docs/, allowed);
  }
});

Deno.test("nginx keeps the same request ids the service does", () => {
  const nginx = read("./nginx/nginx.conf");
  const pattern =
    nginx.match(/map \$http_x_request_id \$req_id \{\s*"~([^"]+)"/)![1];
  assert.equal(pattern, REQUEST_ID_PATTERN.source);
});
