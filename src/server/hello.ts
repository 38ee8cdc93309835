/**
 * What a hello may announce: the name, labels and targets a client claims,
 * checked against the rules and limits before the server takes them.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Hello, Target } from "../../gen/promproxy/v1/scrape_pb.ts";
import { checkLabels, checkName } from "../shared/names.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { ClientInfo } from "./session.ts";

/** Checks a hello against the rules and limits; returns the canonical name or throws InvalidArgument. @internal */
export function checkHello(hello: Hello, options: Pick<ResolvedServerOptions, "maxLabels" | "maxLabelValueLength" | "maxTargets">): string {
  const bad = (m: string) => new ConnectError(`bad hello: ${m}`, Code.InvalidArgument);
  const n = checkName(hello.name);
  if ("error" in n) throw bad(n.error);
  const labelErr = checkLabels(hello.labels, options);
  if (labelErr) throw bad(labelErr);
  if (hello.targets.length > options.maxTargets) {
    throw bad(`${hello.targets.length} targets, the maximum is ${options.maxTargets}`);
  }
  const seen = new Set<string>();
  for (const t of hello.targets) {
    if (t.port > 65535) throw bad(`target port ${t.port} is out of range`);
    if (t.path !== "" && (!t.path.startsWith("/") || t.path.length > 1024 || /[?#\s]/.test(t.path))) {
      throw bad(`target path ${JSON.stringify(t.path.slice(0, 64))} must start with "/" and hold no query, fragment or spaces`);
    }
    const key = `${t.port} ${t.path}`;
    if (seen.has(key)) throw bad(`target port ${t.port} path ${JSON.stringify(t.path)} is announced twice`);
    seen.add(key);
    const e = checkLabels(t.labels, options, `target labels`);
    if (e) throw bad(e);
  }
  return n.name;
}

/** The `Target` messages a hello carries, as ClientInfo holds them. @internal */
export function targetsOf(targets: Target[]): ClientInfo["targets"] {
  if (targets.length === 0) return [{ port: 0, path: "", labels: {} }];
  return targets.map((t) => ({ port: t.port, path: t.path, labels: { ...t.labels } }));
}

