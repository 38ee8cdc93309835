import type { Session } from "./session.ts";

/** One entry of Prometheus' http_sd format. */
export interface DiscoveryGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * The http_sd document for the connected clients: one group per announced
 * target, `NAME` for a target on any port, `NAME:PORT` otherwise, with the
 * client's labels, the target's labels over them, and meta labels.
 *
 * @internal
 */
export function discoveryOf(sessions: Iterable<Session>): DiscoveryGroup[] {
  const groups: DiscoveryGroup[] = [];
  for (const s of sessions) {
    const { name, labels, targets, sessionId } = s.info;
    for (const t of targets) {
      const l: Record<string, string> = {
        ...labels,
        ...t.labels,
        __meta_promproxy_client: name,
        __meta_promproxy_session_id: sessionId,
      };
      if (t.path !== "" && t.path !== "/") l["__metrics_path__"] = t.path;
      groups.push({ targets: [t.port === 0 ? name : `${name}:${t.port}`], labels: l });
    }
  }
  return groups;
}
