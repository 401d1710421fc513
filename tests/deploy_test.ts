// The shipping files: the Kubernetes manifests against the Kubernetes
// schemas, the facts the manifests and the stack must share, and how the
// workflow and .ci/run are wired. The image itself is built and run for real
// by .ci/container/check.sh (podman) and the workflow (docker), both through
// .ci/container/smoke.sh, which also runs it as deploy/deployment.yaml does.
import { restoreWarnings } from "./quiet_punycode.ts";
import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Service } from "kubernetes-models/v1/Service";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import denoJson from "../deno.json" with { type: "json" };
import { ROUTES } from "../service/app.ts";
import { REQUEST_ID_PATTERN } from "../service/answer.ts";
import { SERVICE_ENV } from "../service/config.ts";
import { STACK_DEFAULTS } from "../stack/stack_config.ts";
import {
  onFreePort,
  PortTaken,
  run,
  saysPortTaken,
  stdoutOf,
} from "./test_util.ts";
import { podRun } from "./pod_args.ts";

restoreWarnings();

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

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
    Ingress,
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

Deno.test("the port agrees across stack, manifests and Service", () => {
  const port = STACK_DEFAULTS.port;
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

Deno.test("kustomize applies every manifest in deploy/", () => {
  const files = Array.from(Deno.readDirSync(new URL("./deploy/", ROOT)))
    .map((e) => e.name).filter((n) =>
      n.endsWith(".yaml") && n !== "kustomization.yaml"
    );
  assert.deepEqual(
    parse(read("./deploy/kustomization.yaml")).resources.sort(),
    files.sort(),
  );
});

Deno.test("the Ingress serves every host it routes over TLS, to the Service's port", () => {
  const ingress = byKind("Ingress");
  const service = byKind("Service");
  const tlsHosts = ingress.spec.tls.flatMap((t: { hosts: string[] }) =>
    t.hosts
  );
  for (const rule of ingress.spec.rules) {
    assert.ok(tlsHosts.includes(rule.host), `${rule.host} has a certificate`);
    for (const { backend } of rule.http.paths) {
      assert.equal(backend.service.name, service.metadata.name);
      assert.equal(backend.service.port.name, service.spec.ports[0].name);
    }
  }
  for (const tls of ingress.spec.tls) assert.ok(tls.secretName);
});

Deno.test("only readiness asks /healthz, which CLOCK_MAX_ERROR_MS ties to the clock; startup and liveness ask /livez", () => {
  const paths = {
    startupProbe: "/livez",
    livenessProbe: "/livez",
    readinessProbe: "/healthz",
  };
  for (const [probe, path] of Object.entries(paths)) {
    assert.ok(ROUTES.includes(path));
    assert.equal(container[probe].httpGet.path, path, probe);
    assert.equal(container[probe].httpGet.port, "http", probe);
  }
});

Deno.test("the pod runs non-root, read-only, with its runtime directory the one writable place", async () => {
  const dir: string = containerEnv.RUNTIME_DIR ?? "";
  // The image's own, so that the pod and `docker run` agree.
  const dockerfile = await Deno.readTextFile(
    new URL("../Dockerfile", import.meta.url),
  );
  assert.equal(dir, dockerfile.match(/RUNTIME_DIR=(\S+)/)?.[1]);
  assert.equal(
    deployment.spec.template.spec.securityContext.runAsNonRoot,
    true,
  );
  assert.notEqual(deployment.spec.template.spec.securityContext.runAsUser, 0);
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
Deno.test("the Deployment leaves the replica count to the autoscaler", () => {
  // A replicas field would reset the HPA's choice on every apply.
  assert.equal(deployment.spec.replicas, undefined);
  const hpa = byKind("HorizontalPodAutoscaler");
  assert.equal(hpa.spec.scaleTargetRef.kind, deployment.kind);
  const pdb = byKind("PodDisruptionBudget");
  assert.ok(
    pdb.spec.minAvailable < hpa.spec.minReplicas,
    "a drain can always evict one pod",
  );
});

Deno.test("the smoke test runs the image with the Deployment's own settings", () => {
  const run = podRun(read("./deploy/deployment.yaml"));
  const pod = deployment.spec.template.spec;
  assert.equal(run.uid, pod.securityContext.runAsUser);
  assert.equal(run.gid, pod.securityContext.runAsGroup);
  for (const [name, value] of Object.entries(containerEnv)) {
    assert.ok(run.args.includes(`--env=${name}=${value}`), name);
  }
  for (
    const arg of [
      "--read-only",
      "--cap-drop=ALL",
      "--security-opt=no-new-privileges",
      "--tmpfs=/tmp:size=64m",
      "--memory=256m",
      "--cpus=2",
    ]
  ) assert.ok(run.args.includes(arg), arg);
  assert.deepEqual(run.probes.map((p) => [p.kind, p.path, p.port]), [
    ["startupProbe", "/livez", STACK_DEFAULTS.port],
    ["livenessProbe", "/livez", STACK_DEFAULTS.port],
    ["readinessProbe", "/healthz", STACK_DEFAULTS.port],
  ]);
  // What it cannot reproduce fails loudly instead of being left out.
  const privileged = read("./deploy/deployment.yaml").replace(
    "privileged: false",
    "privileged: true",
  );
  assert.throws(() => podRun(privileged), /privileged/);
  const fromSecret = read("./deploy/deployment.yaml").replace(
    'value: ""',
    "valueFrom: { secretKeyRef: { name: s, key: k } }",
  );
  assert.throws(() => podRun(fromSecret), /env TRUSTED_PROXIES/);
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

Deno.test("the executable's flags serve its own address and refuse any other", () =>
  // Another port if this one is taken before main.ts binds it.
  onFreePort(async (port) => {
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
      "--exclude-unused-npm",
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
      await own.waitFor(/"msg":"listening"/).catch(async (err) => {
        await own.child.status;
        await own.drained;
        throw saysPortTaken(own.stderr) ? new PortTaken(String(err)) : err;
      });
      const res = await fetch(`http://127.0.0.1:${port}/ip`);
      assert.equal(await res.text(), "127.0.0.1\n");
    } finally {
      try {
        own.child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await own.child.status;
      await own.drained;
    }
  }));

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

Deno.test("the workflow publishes only what passed lint, tests and the secret scan", () => {
  const jobs = parse(read("./.github/workflows/ci.yml")).jobs;
  for (const job of ["image", "compile", "release"]) {
    for (const gate of ["lint", "test", "secrets"]) {
      assert.ok(jobs[job].needs.includes(gate), `${job} needs ${gate}`);
    }
  }
  const image = jobs.image.steps.map((s: { name?: string; run?: string }) =>
    s.run ?? s.name ?? ""
  );
  const smoke = image.indexOf(
    ".ci/container/smoke.sh docker ip-timestamp:smoke",
  );
  assert.ok(smoke > 0, "the image job runs the smoke script");
  assert.ok(smoke < image.indexOf("Log in to GHCR"), "smoke test before push");
});

Deno.test("the workflow and .ci/run run the same checks", () => {
  const steps = Object.values(
    parse(read("./.github/workflows/ci.yml")).jobs as Record<
      string,
      { steps: { run?: string }[] }
    >,
  ).flatMap((job) => job.steps.map((s) => s.run ?? ""));
  const ci = read("./.ci/run");
  for (
    const [workflow, local] of [
      ["deno task check", /^check "deno task check" deno task check$/m],
      [".ci/lint.sh all", /for linter in \$\(\.ci\/lint\.sh --list\)/],
    ] as const
  ) {
    assert.ok(steps.includes(workflow), workflow);
    assert.match(ci, local);
  }
  assert.match(ci, /\.ci\/container\/check\.sh/);
  assert.match(
    read("./.ci/container/check.sh"),
    /\.ci\/container\/smoke\.sh podman/,
  );
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
  // Images the workflow runs directly are pinned by digest too.
  const images = [...workflow.matchAll(/^\s+(ghcr\.io\/\S+)/gm)];
  assert.ok(images.length > 0);
  for (const [, image] of images) {
    assert.match(image, /:v[\d.]+@sha256:[0-9a-f]{64}$/, image);
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
