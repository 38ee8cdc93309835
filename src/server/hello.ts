/**
 * What a hello may announce: the name, labels and targets a client claims,
 * checked against the rules and limits before the server takes them.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Hello, Target } from "../../gen/promproxy/v1/scrape_pb.ts";
import { checkLabels, checkName, labelBytes, utf8Bytes } from "../shared/names.ts";
import { discoveryBytesOf } from "./discovery.ts";
import type { ClientInfo } from "./client-info.ts";
import { helloOverBound, maxHeldReplicaIds, maxHelloFeatures } from "./frame-bounds.ts";

/** What a hello may announce, in entries and in bytes. @internal */
export interface HelloLimits {
  /** Most labels in one label set (the hello's, and each target's). */
  maxLabels: number;
  /** Longest label value, in UTF-8 bytes. */
  maxLabelValueLength: number;
  /** Most targets. */
  maxTargets: number;
  /** Most UTF-8 bytes a hello announces in all: its name, every label name and value (hello and targets), every target path. */
  maxHelloBytes: number;
  /**
   * Most UTF-8 bytes the client's groups may take in `/clients`: its labels
   * repeat for every target, and JSON escapes control characters six-fold.
   */
  maxClientDiscoveryBytes: number;
}

/** Defaults of {@link HelloLimits}. @internal */
export const helloDefaults: HelloLimits = {
  /** 32: a label set larger than this is a mistake, not an inventory. */
  maxLabels: 32,
  /** 1 KiB: room for a URL or a description; Prometheus keeps every value in memory for every series. */
  maxLabelValueLength: 1024,
  /** 64: a forwarder in front of a host's exporters. */
  maxTargets: 64,
  /** 64 KiB: a forwarder with 64 targets and a few labels each announces some 15 KiB. */
  maxHelloBytes: 64 * 1024,
  /** 256 KiB: such a forwarder takes some 30 KiB of `/clients`; a client with one target well under 1 KiB. */
  maxClientDiscoveryBytes: 256 * 1024,
};

/** A hello the server accepts, in the form it keeps. @internal */
export interface CheckedHello {
  /** The canonical (lower-case) name. */
  name: string;
  labels: Record<string, string>;
  /** The announced targets; one target on any port at `/metrics` when the hello announced none. */
  targets: ClientInfo["targets"];
}

/** The length of the session ids the server gives (random UUIDs), for measuring `/clients` before one is given. */
const sessionIdPlaceholder = "00000000-0000-0000-0000-000000000000";

/**
 * Checks a hello against the rules and limits: the name is a DNS host name,
 * labels are valid and not reserved (`job`, `instance`, `le`, `quantile`,
 * anything `__`), counts and bytes are within `limits`. Returns what the
 * server keeps; throws `InvalidArgument` ("bad hello: ...") otherwise.
 *
 * @internal
 */
export function checkHello(hello: Hello, limits: HelloLimits): CheckedHello {
  const bad = (m: string) => new ConnectError(`bad hello: ${m}`, Code.InvalidArgument);
  const n = checkName(hello.name);
  if ("error" in n) throw bad(n.error);
  if (hello.features.length > maxHelloFeatures) throw helloOverBound("features", maxHelloFeatures, hello.features.length);
  if (hello.heldReplicaIds.length > maxHeldReplicaIds) throw helloOverBound("held_replica_ids", maxHeldReplicaIds, hello.heldReplicaIds.length);
  if (hello.targets.length > limits.maxTargets) {
    throw bad(`${hello.targets.length} targets, the maximum is ${limits.maxTargets}`);
  }
  let bytes = utf8Bytes(n.name) + labelBytes(hello.labels);
  for (const t of hello.targets) bytes += utf8Bytes(t.path) + labelBytes(t.labels);
  if (bytes > limits.maxHelloBytes) {
    throw bad(`the name, labels and paths announced take ${bytes} bytes (UTF-8), the maximum is ${limits.maxHelloBytes}`);
  }
  const labelErr = checkLabels(hello.labels, limits);
  if (labelErr) throw bad(labelErr);
  const seen = new Set<string>();
  for (const t of hello.targets) {
    if (t.port > 65535) throw bad(`target port ${t.port} is out of range`);
    if (t.path !== "" && (!t.path.startsWith("/") || t.path.length > 1024 || /[?#\s]/.test(t.path))) {
      throw bad(`target path ${JSON.stringify(t.path.slice(0, 64))} must start with "/" and hold no query, fragment or spaces`);
    }
    const key = `${t.port} ${t.path}`;
    if (seen.has(key)) throw bad(`target port ${t.port} path ${JSON.stringify(t.path)} is announced twice`);
    seen.add(key);
    const e = checkLabels(t.labels, limits, `target labels`);
    if (e) throw bad(e);
  }
  const checked: CheckedHello = { name: n.name, labels: { ...hello.labels }, targets: targetsOf(hello.targets) };
  const listed = discoveryBytesOf({ ...checked, sessionId: sessionIdPlaceholder });
  if (listed > limits.maxClientDiscoveryBytes) {
    throw bad(
      `the client would take ${listed} bytes of /clients (its labels repeat for each of its ${checked.targets.length} targets, escaped as JSON), the maximum is ${limits.maxClientDiscoveryBytes}`,
    );
  }
  return checked;
}

/** The `Target` messages a hello carries, as ClientInfo holds them. @internal */
export function targetsOf(targets: Target[]): ClientInfo["targets"] {
  if (targets.length === 0) return [{ port: 0, path: "", labels: {} }];
  return targets.map((t) => ({ port: t.port, path: t.path, labels: { ...t.labels } }));
}
