/**
 * How `deploy/deployment.yaml` runs the image, as `docker run` / `podman
 * run` arguments and a list of its HTTP probes, printed as JSON for the
 * smoke test (`.ci/container/smoke.sh`). A manifest setting this cannot
 * reproduce is an error, not something silently left out.
 *
 * @module
 */
import { parse } from "yaml";

/** One of the container's HTTP probes, with Kubernetes' defaults filled in. */
export interface Probe {
  /** startupProbe, livenessProbe or readinessProbe. */
  kind: string;
  /** The path asked for. */
  path: string;
  /** The container port asked, resolved from its name. */
  port: number;
  /** Seconds between tries. */
  period: number;
  /** Tries before the probe fails. */
  failures: number;
  /** Seconds one try may take. */
  timeout: number;
}

/** What the smoke test needs to run the image as the Deployment does. */
export interface PodRun {
  /** Arguments for `run`, before the image name. */
  args: string[];
  /** The uid and gid every process must run as. */
  uid: number;
  /** See {@linkcode PodRun.uid}. */
  gid: number;
  /** The container port the Service targets. */
  port: number;
  /** The HTTP probes, startup first. */
  probes: Probe[];
}

// deno-lint-ignore no-explicit-any
type Manifest = any;

function unsupported(what: string): never {
  throw new Error(`pod_args: cannot reproduce ${what} with docker/podman run`);
}

/** Kubernetes quantities to the units `run` takes: 64Mi -> 64m, 500m -> 0.5. */
export function quantity(value: string | number, kind: "memory" | "cpu") {
  const text = String(value);
  if (kind === "cpu") {
    const milli = text.match(/^(\d+)m$/);
    if (milli) return String(Number(milli[1]) / 1000);
    if (/^\d+(\.\d+)?$/.test(text)) return text;
  } else {
    const binary = text.match(/^(\d+)(Ki|Mi|Gi)$/);
    if (binary) return `${binary[1]}${binary[2][0].toLowerCase()}`;
  }
  return unsupported(`the ${kind} quantity ${JSON.stringify(text)}`);
}

function securityArgs(pod: Manifest, container: Manifest): string[] {
  const ctx = { ...pod.securityContext, ...container.securityContext };
  const args = [`--user=${ctx.runAsUser}:${ctx.runAsGroup}`];
  if (pod.securityContext?.fsGroup !== undefined) {
    args.push(`--group-add=${pod.securityContext.fsGroup}`);
  }
  if (ctx.privileged) unsupported("privileged: true");
  if (ctx.readOnlyRootFilesystem) args.push("--read-only");
  if (ctx.allowPrivilegeEscalation === false) {
    args.push("--security-opt=no-new-privileges");
  }
  for (const cap of ctx.capabilities?.drop ?? []) {
    args.push(`--cap-drop=${cap}`);
  }
  for (const cap of ctx.capabilities?.add ?? []) args.push(`--cap-add=${cap}`);
  return args;
}

function volumeArgs(pod: Manifest, container: Manifest): string[] {
  return (container.volumeMounts ?? []).map((mount: Manifest) => {
    const volume = pod.volumes?.find((v: Manifest) => v.name === mount.name);
    if (!volume?.emptyDir) unsupported(`the volume ${mount.name}`);
    const size = volume.emptyDir.sizeLimit;
    return `--tmpfs=${mount.mountPath}${
      size ? `:size=${quantity(size, "memory")}` : ""
    }`;
  });
}

function probes(container: Manifest): Probe[] {
  const ports = new Map<string, number>(
    container.ports.map((p: Manifest) => [p.name, p.containerPort]),
  );
  return ["startupProbe", "livenessProbe", "readinessProbe"]
    .filter((kind) => container[kind])
    .map((kind) => {
      const probe = container[kind];
      if (!probe.httpGet) unsupported(`the ${kind} (only httpGet)`);
      const port = ports.get(probe.httpGet.port) ?? probe.httpGet.port;
      return {
        kind,
        path: probe.httpGet.path,
        port: Number(port),
        period: probe.periodSeconds ?? 10,
        failures: probe.failureThreshold ?? 3,
        timeout: probe.timeoutSeconds ?? 1,
      };
    });
}

/** Reads a Deployment manifest and says how to run its first container. */
export function podRun(manifestText: string): PodRun {
  const deployment = parse(manifestText);
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  if (container.command || container.args) unsupported("command/args");
  const env = (container.env ?? []).map((e: Manifest) =>
    "value" in e ? `--env=${e.name}=${e.value}` : unsupported(`env ${e.name}`)
  );
  const limits = container.resources?.limits ?? {};
  const ctx = { ...pod.securityContext, ...container.securityContext };
  if (!ctx.runAsNonRoot || !ctx.runAsUser) unsupported("a root pod");
  return {
    args: [
      ...securityArgs(pod, container),
      ...volumeArgs(pod, container),
      ...env,
      ...(limits.memory
        ? [`--memory=${quantity(limits.memory, "memory")}`]
        : []),
      ...(limits.cpu ? [`--cpus=${quantity(limits.cpu, "cpu")}`] : []),
    ],
    uid: ctx.runAsUser,
    gid: ctx.runAsGroup,
    port: container.ports[0].containerPort,
    probes: probes(container),
  };
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "deploy/deployment.yaml";
  console.log(JSON.stringify(podRun(await Deno.readTextFile(path))));
}
