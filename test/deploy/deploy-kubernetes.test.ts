/**
 * deploy/kubernetes/, checked offline: every manifest is valid against the Kubernetes schemas (kubernetes-models'
 * validators, plus a check for fields the schemas do not know, which the API server would drop or refuse), and
 * consistent with the CLI and with itself: flags that exist, ports, probes, grace periods, selectors, the
 * Services Prometheus and the clients use, the tokens the example Secrets share.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments, stringify } from "yaml";
import { parseTokenFile } from "../../src/auth/stream/bearer-auth.ts";
import { compilePatterns, patternList } from "../../src/auth/stream/patterns.ts";
import { parsePromTokenFile } from "../../src/auth/prometheus/prom-credentials.ts";
import { clientUsage, resolveClientConfig } from "../../src/cli/config.ts";
import { serverUsage } from "../../src/cli/server-command.ts";
import { parseDurationMs, parseHostPort } from "../../src/cli/util.ts";
import { checkName } from "../../src/shared/names.ts";

const dir = fileURLToPath(new URL("../../deploy/kubernetes/", import.meta.url));

/** Files that are not Kubernetes objects. */
const notObjects = new Set(["kustomization.yaml", "prometheus-scrape-configs.yaml"]);

/** A Kubernetes object as read from YAML: loosely typed, each check asserts what it relies on. */
type Obj = any;

interface Doc {
  file: string;
  obj: Obj;
}

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && !notObjects.has(f)).sort()) {
    for (const d of parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"))) {
      assert.deepEqual(d.errors, [], `${file}: YAML errors`);
      const obj = d.toJS();
      if (obj !== null && obj !== undefined) docs.push({ file, obj });
    }
  }
  return docs;
}

let loaded: Doc[] | undefined;
/** Every object of every manifest, read on first use (inside a test, so that a broken file fails that test with its message). */
const allDocs = (): Doc[] => (loaded ??= loadDocs());
const ref = ({ file, obj }: Doc) => `${file}: ${obj?.kind}/${obj?.metadata?.namespace ?? ""}/${obj?.metadata?.name}`;

function find(kind: string, name: string, namespace?: string): Obj {
  const hits = allDocs().filter((d) => d.obj.kind === kind && d.obj.metadata?.name === name && (namespace === undefined || d.obj.metadata?.namespace === namespace));
  assert.equal(hits.length, 1, `exactly one ${kind} ${namespace ?? "*"}/${name}`);
  return hits[0]!.obj;
}

function loadYaml(file: string): Obj {
  return parse(fs.readFileSync(path.join(dir, file), "utf8"));
}

// ---------------------------------------------------------------------------------------------------------
// Schema validation

/** The kubernetes-models module of an apiVersion and kind: "apps/v1" + "Deployment" -> kubernetes-models/apps/v1/Deployment. */
function modelSpecifier(apiVersion: string, kind: string): string {
  assert.match(apiVersion, /^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/, `apiVersion ${apiVersion}`);
  assert.match(kind, /^[A-Z][A-Za-z0-9]+$/, `kind ${kind}`);
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/**
 * The fields of each object type, read from kubernetes-models' own declarations (one interface per .d.ts file,
 * `"field"?: Type;` per member, other types imported one per file). Its validators accept unknown fields; the
 * API server does not (kubectl's strict validation refuses them, older setups drop them silently).
 */
interface FieldType {
  /** The .d.ts file of the field's object type; undefined for strings, numbers, enums, IntOrString, ... */
  file?: string;
  array: boolean;
  map: boolean;
}

const interfaceCache = new Map<string, Map<string, FieldType> | undefined>();

function resolveDts(from: string, specifier: string): string | undefined {
  if (specifier.startsWith(".")) return path.resolve(path.dirname(from), specifier.replace(/\.js$/, ".d.ts"));
  for (let d = path.dirname(from); ; d = path.dirname(d)) {
    const candidate = path.join(d, "node_modules", `${specifier}.d.ts`);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(d) === d) return undefined;
  }
}

function interfaceOf(file: string): Map<string, FieldType> | undefined {
  if (interfaceCache.has(file)) return interfaceCache.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
    const target = resolveDts(file, m[2]!);
    if (target) for (const name of m[1]!.split(",")) imports.set(name.trim(), target);
  }
  const start = text.search(/^export interface \w+/m);
  let fields: Map<string, FieldType> | undefined;
  if (start >= 0) {
    // A type alias (IntOrString, Quantity, Time) has no interface: a leaf.
    fields = new Map();
    const lines = text.slice(start, text.indexOf("\n}", start)).split("\n");
    lines.forEach((line, i) => {
      const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(line);
      if (!m) return;
      let type = m[2]!.replace(/;$/, "");
      let map = false;
      if (type === "{") {
        const inner = /^\s+\[key: string\]: (.*);$/.exec(lines[i + 1] ?? "");
        assert.ok(inner, `${file}: field ${m[1]}: an inline type that is no map`);
        type = inner[1]!;
        map = true;
      }
      const arrayOf = /^Array<(.*)>$/.exec(type);
      if (arrayOf) type = arrayOf[1]!;
      fields!.set(m[1]!, { file: imports.get(type), array: Boolean(arrayOf), map });
    });
    assert.ok(fields.size > 0, `${file}: no fields found: has kubernetes-models changed its declarations?`);
  }
  interfaceCache.set(file, fields);
  return fields;
}

/** Paths of fields in `value` that its type does not have. */
function unknownFields(value: unknown, file: string, at: string, out: string[] = []): string[] {
  const fields = interfaceOf(file);
  if (!fields || value === null || typeof value !== "object" || Array.isArray(value)) return out;
  for (const [key, v] of Object.entries(value)) {
    const t = fields.get(key);
    if (!t) {
      out.push(`${at}.${key}`);
      continue;
    }
    if (!t.file || v === null || v === undefined) continue;
    if (t.array) (Array.isArray(v) ? v : []).forEach((e, i) => unknownFields(e, t.file!, `${at}.${key}[${i}]`, out));
    else if (t.map) for (const [k, e] of Object.entries(v)) unknownFields(e, t.file, `${at}.${key}.${k}`, out);
    else unknownFields(v, t.file, `${at}.${key}`, out);
  }
  return out;
}

async function schemaErrors(obj: Obj): Promise<string[]> {
  const specifier = modelSpecifier(obj.apiVersion, obj.kind);
  const mod = await import(specifier);
  const Model = mod[obj.kind];
  assert.equal(typeof Model, "function", `${specifier} exports ${obj.kind}`);
  const errors: string[] = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    errors.push((e as Error).message);
  }
  const dts = fileURLToPath(import.meta.resolve(specifier)).replace(/\.js$/, ".d.ts");
  for (const f of unknownFields(obj, dts, obj.kind)) errors.push(`unknown field ${f}`);
  return errors;
}

test("kubernetes: every manifest is valid against the Kubernetes schemas, with no unknown field", async () => {
  assert.ok(allDocs().length >= 10, `found ${allDocs().length} objects`);
  for (const d of allDocs()) {
    assert.ok(d.obj.metadata?.name, `${ref(d)}: a name`);
    if (d.obj.kind !== "Namespace") assert.ok(d.obj.metadata?.namespace, `${ref(d)}: an explicit namespace`);
    assert.deepEqual(await schemaErrors(d.obj), [], ref(d));
  }
});

test("kubernetes: the schema check does catch a wrong type and an unknown field", async () => {
  const deployment = structuredClone(find("Deployment", "promproxy", "promproxy"));
  const container = deployment.spec.template.spec.containers[0];
  container.readinesProbe = container.readinessProbe; // a typo kubernetes-models' validator alone lets through
  container.ports[0].containerPort = "8080";
  deployment.spec.template.metadata.labelz = {};
  const errors = await schemaErrors(deployment);
  assert.ok(errors.some((e) => /containerPort must be integer/.test(e)), errors.join("\n"));
  assert.ok(errors.includes("unknown field Deployment.spec.template.spec.containers[0].readinesProbe"), errors.join("\n"));
  assert.ok(errors.includes("unknown field Deployment.spec.template.metadata.labelz"), errors.join("\n"));
});

test("kubernetes: kustomization.yaml lists the server side, and only files that exist", () => {
  const k = loadYaml("kustomization.yaml");
  assert.equal(k.kind, "Kustomization");
  for (const r of k.resources) assert.ok(fs.existsSync(path.join(dir, r)), `kustomization resource ${r} exists`);
  const listed = new Set<string>(k.resources);
  for (const d of allDocs()) {
    if (d.obj.metadata?.namespace === "promproxy" && d.obj.kind !== "Secret") assert.ok(listed.has(d.file), `${ref(d)} is in kustomization.yaml`);
  }
  for (const kind of ["Namespace", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"]) {
    assert.ok(
      allDocs().some((d) => listed.has(d.file) && d.obj.kind === kind),
      `kustomization.yaml applies a ${kind}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------------------
// The CLI

/** The flags a usage text documents, and whether each takes a value ("--listen HOST:PORT") or is a switch. */
function usageFlags(usage: string): Map<string, boolean> {
  const flags = new Map<string, boolean>();
  for (const m of usage.matchAll(/^ +(--[a-z0-9-]+)(?: ((?:\[[A-Z]+=\])?[A-Z][A-Z0-9_:=]*))?(?: {2,}|$)/gm)) flags.set(m[1]!, m[2] !== undefined);
  return flags;
}

interface Args {
  /** Every value of each flag, in order; a switch has the value true. */
  values: Map<string, (string | true)[]>;
  one(flag: string): string;
}

/** The image the repository's Dockerfile builds, as docs/operations.md's `docker build -t` names it. */
const image = `promproxy:${(JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version}`;
const runsPromproxy = (c: Obj) => typeof c.image === "string" && c.image.split(":")[0] === image.split(":")[0];

/**
 * Checks a promproxy container's args against the usage text: the image's ENTRYPOINT runs (no `command`), the
 * first arg is the command, then every arg in the one form that reads unambiguously ("--flag=value", or
 * "--switch"), and every $(VAR) defined in the container's env.
 */
function parseArgsOf(container: Obj, command: "server" | "client", usage: string, where: string): Args {
  assert.equal(container.command, undefined, `${where}: no command: the image's ENTRYPOINT runs promproxy`);
  assert.equal(container.image, image, `${where}: the image the Dockerfile builds`);
  assert.equal(container.args?.[0], command, `${where}: the first arg is the command`);
  const known = usageFlags(usage);
  assert.ok(known.size > 10, "usage text parsed");
  const env = new Set<string>((container.env ?? []).map((e: Obj) => e.name));
  const values = new Map<string, (string | true)[]>();
  const missing: string[] = [];
  for (const arg of (container.args as string[]).slice(1)) {
    const m = /^(--[a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    assert.ok(m, `${where}: ${JSON.stringify(arg)} is no --flag=value`);
    const [, flag, value] = m;
    if (!known.has(flag!)) {
      missing.push(flag!);
      continue;
    }
    assert.equal(value !== undefined, known.get(flag!), `${where}: ${flag} ${known.get(flag!) ? "takes a value: --flag=value" : "is a switch: no =value"}`);
    for (const v of (value ?? "").matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) assert.ok(env.has(v[1]!), `${where}: ${flag} uses $(${v[1]}), which the container's env does not define`);
    values.set(flag!, [...(values.get(flag!) ?? []), value ?? true]);
  }
  assert.deepEqual(missing, [], `${where}: flags that "promproxy ${command} --help" does not list`);
  return {
    values,
    one(flag) {
      const v = values.get(flag);
      assert.ok(v && v.length === 1 && typeof v[0] === "string", `${where}: ${flag}=VALUE given once`);
      return v[0] as string;
    },
  };
}

/** The server's Deployment, pod, container, args and --listen port. */
function serverSide() {
  const server = find("Deployment", "promproxy", "promproxy");
  const serverPod = server.spec.template.spec;
  const serverContainer = serverPod.containers.find((c: Obj) => c.name === "server");
  assert.ok(serverContainer, "a container named server");
  const serverArgs = parseArgsOf(serverContainer, "server", serverUsage, "server.yaml");
  const listenPort = parseHostPort(serverArgs.one("--listen"), "--listen").port;
  return { server, serverPod, serverContainer, serverArgs, listenPort };
}

/** The number a container port reference (a name or a number) stands for in a container. */
function portOf(container: Obj, p: string | number): number {
  if (typeof p === "number") return p;
  const hit = (container.ports ?? []).filter((cp: Obj) => cp.name === p);
  assert.equal(hit.length, 1, `container ${container.name} has one port named ${p}`);
  return hit[0].containerPort;
}

/** Whether a label selector selects pods with these labels. */
function selects(selector: Obj, labels: Record<string, string>): boolean {
  const matchLabels = selector?.matchLabels ?? {};
  assert.ok(Object.keys(matchLabels).length > 0 || selector?.matchExpressions, "a non-empty selector");
  assert.equal(selector?.matchExpressions, undefined, "selectors here use matchLabels only");
  return Object.entries(matchLabels).every(([k, v]) => labels[k] === v);
}

test("kubernetes: the server's args are flags of `promproxy server`, and its ports and probes match --listen", () => {
  const { serverContainer, serverArgs, listenPort } = serverSide();
  assert.equal(parseHostPort(serverArgs.one("--listen"), "--listen").host, "0.0.0.0", "--listen on every address: the kubelet probes the pod IP");
  assert.deepEqual(
    serverContainer.ports.map((p: Obj) => [p.name, p.containerPort, p.protocol ?? "TCP"]),
    [["http", listenPort, "TCP"]],
    "one container port: the --listen port",
  );
  const tls = serverArgs.values.has("--tls-cert-file");
  for (const [probe, pathname] of [
    ["livenessProbe", "/healthz"],
    ["readinessProbe", "/readyz"],
  ] as const) {
    const get = serverContainer[probe]?.httpGet;
    assert.ok(get, `${probe} is an httpGet`);
    assert.equal(get.path, pathname, `${probe} path`);
    assert.equal(portOf(serverContainer, get.port), listenPort, `${probe} port is the --listen port`);
    assert.equal(get.scheme ?? "HTTP", tls ? "HTTPS" : "HTTP", `${probe} scheme follows --tls-cert-file`);
  }
  assert.ok(!serverArgs.values.has("--tls-require-client-cert"), "the kubelet's probes present no client certificate");
  assert.equal(serverArgs.one("--replica-id"), "$(POD_NAME)");
  const podName = serverContainer.env.find((e: Obj) => e.name === "POD_NAME");
  assert.equal(podName?.valueFrom?.fieldRef?.fieldPath, "metadata.name", "POD_NAME is the pod's name");
});

test("kubernetes: the server's shutdown fits the grace period, and a replacement warms up past it", () => {
  const { serverPod, serverContainer, serverArgs } = serverSide();
  const drain = parseDurationMs(serverArgs.one("--drain-delay"), "--drain-delay", { allowZero: true });
  const grace = parseDurationMs(serverArgs.one("--shutdown-grace"), "--shutdown-grace");
  const warmup = parseDurationMs(serverArgs.one("--warmup"), "--warmup", { allowZero: true });
  assert.ok(drain >= 3_000, "the drain delay leaves kube-proxy time to drop the endpoint");
  assert.ok(
    serverPod.terminationGracePeriodSeconds * 1000 > drain + grace,
    `terminationGracePeriodSeconds ${serverPod.terminationGracePeriodSeconds}s > --drain-delay + --shutdown-grace (${(drain + grace) / 1000}s)`,
  );
  // The old replica's clients reach the replacement only when it exits; the replacement must not be ready before.
  assert.ok(warmup >= drain + grace, `--warmup ${warmup / 1000}s >= --drain-delay + --shutdown-grace`);
  assert.equal(serverPod.containers.length, 1);
  assert.equal(serverContainer.lifecycle?.preStop, undefined, "the server drains by itself on SIGTERM: no preStop sleep");
});

test("kubernetes: replicas, rollout, disruption budget and spread", () => {
  const { server, serverPod, serverArgs } = serverSide();
  const replicas = server.spec.replicas;
  assert.equal(replicas, 3);
  assert.equal(Number(serverArgs.one("--replica-count")), replicas, "--replica-count is the Deployment's replicas");
  const k = Number(serverArgs.one("--replicas-per-client"));
  assert.ok(k >= 2 && k < replicas, "each client holds K of the replicas: two at least (one restarts at a time), fewer than all");
  const podLabels = server.spec.template.metadata.labels;
  assert.ok(selects(server.spec.selector, podLabels), "the Deployment selects its pods");
  // A surge pod would meet no client (they stop dialling at --replica-count): replace old pods one by one.
  assert.deepEqual(server.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });

  const pdb = find("PodDisruptionBudget", "promproxy", "promproxy");
  assert.ok(selects(pdb.spec.selector, podLabels), "the PodDisruptionBudget selects the server pods");
  const allowed = pdb.spec.maxUnavailable ?? replicas - pdb.spec.minAvailable;
  assert.equal(allowed, 1, "one replica down at a time");

  const spread = serverPod.topologySpreadConstraints ?? [];
  const hosts = spread.find((c: Obj) => c.topologyKey === "kubernetes.io/hostname");
  assert.ok(hosts || serverPod.affinity?.podAntiAffinity, "replicas spread over nodes");
  for (const c of spread) assert.ok(selects(c.labelSelector, podLabels), `spread over ${c.topologyKey} counts the server pods`);
});

test("kubernetes: the two Services select the server pods; only the client-facing one includes unready pods", () => {
  const { server, serverContainer, listenPort } = serverSide();
  const podLabels = server.spec.template.metadata.labels;
  const forPrometheus = find("Service", "promproxy", "promproxy");
  const forClients = find("Service", "promproxy-clients", "promproxy");
  for (const svc of [forPrometheus, forClients]) {
    assert.ok(selects(svc.spec.selector ? { matchLabels: svc.spec.selector } : undefined, podLabels), `${svc.metadata.name} selects the server pods`);
    assert.equal(svc.spec.ports.length, 1);
    assert.equal(portOf(serverContainer, svc.spec.ports[0].targetPort), listenPort, `${svc.metadata.name} targets the --listen port`);
  }
  assert.notEqual(forPrometheus.spec.publishNotReadyAddresses, true, "Prometheus reaches ready replicas only");
  assert.equal(forClients.spec.publishNotReadyAddresses, true, "clients reach replicas that are still warming up");
  assert.notEqual(forClients.spec.sessionAffinity, "ClientIP", "each new connection may land on another replica");
});

test("kubernetes: the NetworkPolicy lets the clients' and Prometheus' namespaces reach the --listen port", () => {
  const { server, listenPort } = serverSide();
  const np = find("NetworkPolicy", "promproxy", "promproxy");
  assert.ok(selects(np.spec.podSelector, server.spec.template.metadata.labels), "the policy covers the server pods");
  const rules: Obj[] = np.spec.ingress;
  for (const r of rules) for (const p of r.ports) assert.equal(p.port, listenPort, "ingress to the --listen port only");
  const clientNs = find("Namespace", "example-app");
  assert.ok(
    rules.some((r) => r.from.some((f: Obj) => f.namespaceSelector && !f.podSelector && selects(f.namespaceSelector, clientNs.metadata.labels))),
    "the example client's namespace may reach the servers",
  );
  assert.ok(
    rules.some((r) => r.from.some((f: Obj) => f.podSelector && selects(f.namespaceSelector, { "kubernetes.io/metadata.name": "monitoring" }))),
    "Prometheus' pods in the namespace monitoring may reach the servers",
  );
});

test("kubernetes: --peers names a headless Service of every server pod, ready or not, and the pods may reach each other", () => {
  const { server, serverContainer, serverArgs, listenPort } = serverSide();
  const podLabels = server.spec.template.metadata.labels;
  const url = new URL(serverArgs.one("--peers"));
  assert.equal(url.protocol, serverArgs.values.has("--tls-cert-file") ? "https:" : "http:");
  const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$/.exec(url.hostname);
  assert.ok(m, `--peers names a Service by its DNS name, got ${url.hostname}`);
  const svc = find("Service", m[1]!, m[2]!);
  assert.equal(svc.spec.clusterIP, "None", "headless: the name resolves to every pod's address");
  assert.equal(svc.spec.publishNotReadyAddresses, true, "replicas still warming up hold clients too");
  assert.ok(selects({ matchLabels: svc.spec.selector }, podLabels), "it selects the server pods");
  assert.equal(portOf(serverContainer, svc.spec.ports[0].targetPort), listenPort);
  assert.equal(Number(url.port), listenPort, "headless: the pods' own port");
  assert.ok(serverArgs.values.has("--peer-secret-file"), "--peers needs --peer-secret-file");
  const np = find("NetworkPolicy", "promproxy", "promproxy");
  const fromPeers = (r: Obj) => (r.from ?? r.to).some((f: Obj) => !f.namespaceSelector && f.podSelector && selects(f.podSelector, podLabels));
  assert.ok(np.spec.ingress.some(fromPeers), "ingress from the other replicas");
  assert.ok(np.spec.egress.some((r: Obj) => fromPeers(r) && r.ports.some((p: Obj) => p.port === listenPort)), "egress to the other replicas");
  assert.ok(np.spec.egress.some((r: Obj) => r.ports.some((p: Obj) => p.port === 53 && p.protocol === "UDP")), "egress to the cluster DNS");
});

test("kubernetes: every pod is hardened (Pod Security Standard restricted) and bounded", () => {
  const { serverContainer } = serverSide();
  const pods = allDocs().filter((d) => d.obj.kind === "Deployment");
  assert.ok(pods.length >= 2);
  for (const d of pods) {
    const pod = d.obj.spec.template.spec;
    const where = ref(d);
    assert.equal(pod.automountServiceAccountToken, false, `${where}: no API token`);
    assert.equal(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
    assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault", `${where}: seccomp`);
    for (const c of pod.containers) {
      const sc = c.securityContext ?? {};
      const at = `${where} container ${c.name}`;
      assert.ok((sc.runAsUser ?? pod.securityContext.runAsUser) > 0, `${at}: runAsUser, not root`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${at}: allowPrivilegeEscalation`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${at}: readOnlyRootFilesystem`);
      assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${at}: drop all capabilities`);
      assert.notEqual(sc.privileged, true, `${at}: not privileged`);
      for (const r of ["cpu", "memory"]) {
        assert.ok(c.resources?.requests?.[r] !== undefined, `${at}: requests ${r}`);
        assert.ok(c.resources?.limits?.[r] !== undefined, `${at}: limits ${r}`);
      }
      if (runsPromproxy(c)) {
        // Service links would define PROMPROXY_SERVICE_HOST, PROMPROXY_PORT, ...: the CLI reads PROMPROXY_* as options.
        assert.equal(pod.enableServiceLinks, false, `${at}: enableServiceLinks false`);
        assert.equal(c.image, image, `${at}: the image the Dockerfile builds`);
      }
    }
  }
  const heap = /--max-old-space-size=(\d+)/.exec(serverContainer.env.find((e: Obj) => e.name === "NODE_OPTIONS")?.value ?? "");
  const limit = /^(\d+)Gi$/.exec(serverContainer.resources.limits.memory);
  assert.ok(heap && limit && Number(heap[1]) < Number(limit[1]) * 1024 * 0.9, "V8's heap stays well under the memory limit");
});

/** The Secret key a file path in a container reads, through a whole-Secret volume mount (no subPath, so it updates). */
function secretFile(pod: Obj, container: Obj, file: string): { secret: string; key: string } {
  const mount = (container.volumeMounts ?? []).find((m: Obj) => file.startsWith(m.mountPath.replace(/\/?$/, "/")));
  assert.ok(mount, `${file} is under a volume mount of ${container.name}`);
  assert.equal(mount.subPath, undefined, `${file}: no subPath (a subPath mount never sees a changed Secret)`);
  assert.equal(mount.readOnly, true, `${file}: mounted read-only`);
  const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.ok(volume?.secret?.secretName, `${file} comes from a Secret`);
  const key = file.slice(mount.mountPath.replace(/\/?$/, "/").length);
  return { secret: volume.secret.secretName, key };
}

function secretValue(namespace: string, name: string, key: string): string {
  const s = find("Secret", name, namespace);
  const v = s.stringData?.[key] ?? (s.data?.[key] !== undefined ? Buffer.from(s.data[key], "base64").toString("utf8") : undefined);
  assert.equal(typeof v, "string", `Secret ${namespace}/${name} has the key ${key}`);
  return v;
}

test("kubernetes: secrets reach the server, the client and Prometheus as files, from Secrets that agree", () => {
  const { serverPod, serverContainer, serverArgs } = serverSide();
  for (const [flag, values] of serverArgs.values) {
    if (flag.endsWith("-file")) for (const v of values) secretFile(serverPod, serverContainer, v as string);
  }
  // The example client's token is one of the server's client tokens, and its patterns allow the client's name.
  const clientTokens = secretFile(serverPod, serverContainer, serverArgs.one("--client-token-file"));
  const tokensText = secretValue("promproxy", clientTokens.secret, clientTokens.key);
  assert.equal(parseTokenFile(tokensText, clientTokens.key).length, 1, "the server's client token file parses");
  const { pod, container, args } = exampleClient();
  const token = secretFile(pod, container, args.one("--token-file"));
  const clientToken = secretValue("example-app", token.secret, token.key).trim();
  const line = tokensText
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, "").trim().split(/\s+/))
    .find(([t]) => t === clientToken);
  assert.ok(line, "the example client's token is in the server's --client-token-file");
  const allows = compilePatterns(patternList(line[1]!));
  assert.ok(allows(exampleName()), `the token may hold the name ${exampleName()}`);
  assert.ok(!allows("example-app-7d4b9c8f6-x2k9q.other-namespace"), "and no name in another namespace");

  // Prometheus' token is one of the server's --prom-token-file tokens.
  const promTokens = secretFile(serverPod, serverContainer, serverArgs.one("--prom-token-file"));
  const promText = secretValue("promproxy", promTokens.secret, promTokens.key);
  const promToken = secretValue("monitoring", "promproxy-prometheus-token", "token").trim();
  assert.equal(parsePromTokenFile(promText, promTokens.key).length, 1);
  assert.ok(promText.split("\n").some((l) => l.trim() === promToken), "Prometheus' token is in the server's --prom-token-file");
  for (const d of allDocs().filter((x) => x.obj.kind === "Secret")) {
    assert.equal(d.file, "secrets.example.yaml", `${ref(d)}: example Secrets live in secrets.example.yaml only`);
    for (const v of Object.values(d.obj.stringData ?? {})) assert.match(String(v), /REPLACE-ME/, `${ref(d)}: an obvious placeholder`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The example client

function exampleClient(): { pod: Obj; container: Obj; args: Args } {
  const deployment = find("Deployment", "example-app", "example-app");
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find(runsPromproxy);
  return { pod, container, args: parseArgsOf(container, "client", clientUsage, "client-example.yaml") };
}

/** The example's args with the kubelet's $(VAR) expansion, for a pod of the example Deployment. */
const examplePod = { POD_NAME: "example-app-7d4b9c8f6-x2k9q", POD_NAMESPACE: "example-app" };
function exampleName(): string {
  return expand(exampleClient().args.one("--name"));
}
function expand(s: string): string {
  return s.replace(/\$\(([A-Z_]+)\)/g, (_, v: keyof typeof examplePod) => {
    assert.ok(v in examplePod, `$(${v})`);
    return examplePod[v];
  });
}

test("kubernetes: the example forwarder's args resolve to a valid client of the client-facing Service", () => {
  const { serverArgs } = serverSide();
  const { pod, container, args } = exampleClient();
  for (const e of container.env) {
    if (e.name in examplePod) assert.equal(e.valueFrom?.fieldRef?.fieldPath, e.name === "POD_NAME" ? "metadata.name" : "metadata.namespace");
  }
  const argv = (container.args as string[]).slice(1).map(expand);
  const cfg = resolveClientConfig(argv, {}, () => assert.fail("no --config file"));
  assert.notEqual(cfg, "help");
  if (cfg === "help") return;
  const name = checkName(cfg.name);
  assert.ok("name" in name, `--name ${cfg.name}: ${"error" in name ? name.error : ""}`);

  const url = new URL(args.one("--server"));
  const svc = find("Service", "promproxy-clients", "promproxy");
  assert.equal(url.protocol, serverArgs.values.has("--tls-cert-file") ? "https:" : "http:");
  assert.equal(url.hostname, `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`, "--server is the client-facing Service");
  assert.equal(Number(url.port), svc.spec.ports[0].port, "--server's port is the client-facing Service's port");
  assert.equal(svc.spec.publishNotReadyAddresses, true);

  // Every target is served on the pod's loopback by a container of this pod (the exporter, or the forwarder's own metrics).
  const exporter = pod.containers.find((c: Obj) => c !== container);
  const listens = new Set<string>();
  for (const a of exporter.args ?? []) {
    const m = /^--web\.listen-address=(.*)$/.exec(a);
    if (m) listens.add(m[1]);
  }
  if (args.values.has("--metrics-listen")) listens.add(args.one("--metrics-listen"));
  for (const t of args.values.get("--target") ?? []) {
    const m = /^(\d+)=(.*)$/.exec(t as string);
    assert.ok(m, `--target ${t} names the port Prometheus addresses`);
    const target = new URL(m[2]!);
    assert.ok(listens.has(target.host), `--target ${t}: something in the pod listens on ${target.host}`);
    assert.equal(target.hostname, "127.0.0.1", `--target ${t}: on the pod's loopback`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Prometheus

test("kubernetes: Prometheus scrapes through the Prometheus-facing Service and discovers the server pods", () => {
  const { server, serverContainer, serverArgs } = serverSide();
  const config = loadYaml("prometheus-scrape-configs.yaml");
  const jobs: Obj[] = config.scrape_configs;
  const svc = find("Service", "promproxy", "promproxy");
  assert.notEqual(svc.spec.publishNotReadyAddresses, true);
  const base = `http://${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local:${svc.spec.ports[0].port}`;

  const proxied = jobs.find((j) => j.job_name === "promproxy");
  assert.equal(proxied.proxy_url, base, "proxy_url is the Prometheus-facing Service");
  assert.deepEqual(
    proxied.http_sd_configs.map((s: Obj) => s.url),
    [`${base}/clients`],
    "http_sd is the Prometheus-facing Service's /clients",
  );
  // Which endpoints --prom-token-file guards (--prom-auth-endpoints, all three by default).
  const endpoints = serverArgs.values.get("--prom-auth-endpoints")?.[0];
  const guarded = (e: string) => serverArgs.values.has("--prom-token-file") && (typeof endpoints !== "string" || endpoints.split(",").includes(e));
  assert.ok(!serverArgs.values.has("--prom-users-file"), "this check knows bearer tokens only");
  const tokenPath = "/etc/prometheus/secrets/promproxy-prometheus-token/token"; // Secret monitoring/promproxy-prometheus-token
  assert.equal(proxied.authorization?.credentials_file, guarded("proxy") ? tokenPath : undefined, "proxied scrapes carry the token");
  for (const s of proxied.http_sd_configs) assert.equal(s.authorization?.credentials_file, guarded("clients") ? tokenPath : undefined, "/clients requests carry the token");

  const own = jobs.find((j) => j.job_name === "promproxy-server");
  const sd = own.kubernetes_sd_configs;
  assert.equal(sd.length, 1);
  assert.equal(sd[0].role, "pod");
  assert.deepEqual(sd[0].namespaces.names, [server.metadata.namespace], "discovers pods in the server's namespace");
  const podLabels = server.spec.template.metadata.labels;
  const wanted = Object.fromEntries(sd[0].selectors[0].label.split(",").map((kv: string) => kv.split("=")));
  assert.ok(selects({ matchLabels: wanted }, podLabels), "the pod selector matches the server pods");
  const keepPort = own.relabel_configs.find((r: Obj) => r.source_labels?.[0] === "__meta_kubernetes_pod_container_port_name");
  assert.equal(keepPort.regex, serverContainer.ports[0].name, "keeps the --listen port, by its name");
  assert.equal(own.authorization?.credentials_file, guarded("metrics") ? tokenPath : undefined, "/metrics requests carry the token");
});

test("kubernetes: promtool accepts the Prometheus scrape configs", { skip: !hasPromtool() && "promtool is not installed" }, () => {
  const config = loadYaml("prometheus-scrape-configs.yaml");
  // Debian's Prometheus is built without Kubernetes discovery: there, the kubernetes_sd job is left out.
  const k8s = promtoolCheck("scrape_configs: [{ job_name: k, kubernetes_sd_configs: [{ role: pod }] }]\n") === undefined;
  const jobs = config.scrape_configs.filter((j: Obj) => k8s || !j.kubernetes_sd_configs);
  assert.ok(jobs.some((j: Obj) => j.job_name === "promproxy"));
  assert.equal(promtoolCheck(stringify({ ...config, scrape_configs: jobs })), undefined);
});

function hasPromtool(): boolean {
  try {
    execFileSync("promtool", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** `promtool check config --syntax-only` on a configuration: undefined when it passes, else what it said. */
function promtoolCheck(text: string): string | undefined {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-k8s-"));
  try {
    const file = path.join(tmp, "prometheus.yml");
    fs.writeFileSync(file, text);
    execFileSync("promtool", ["check", "config", "--syntax-only", file], { stdio: "pipe" });
    return undefined;
  } catch (e) {
    const err = e as { stdout?: Buffer; stderr?: Buffer; message: string };
    return `${err.stdout?.toString() ?? ""}${err.stderr?.toString() ?? err.message}`;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
