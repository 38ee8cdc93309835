import type { TargetOutcome } from "../client/targets/http-target.ts";
import { sparseLog } from "../client/fleet-limits.ts";
import type { Logger } from "../shared/logger.ts";

/**
 * The forwarder's log of its targets: a target's health when it changes (answering, an HTTP error status, or a
 * failure reason), not every scrape; and scrapes a target refused past its own limits (`maxScrapesPerSecond`,
 * `maxScrapesInFlight`: an order flood, or a Prometheus scraping too often), at most once a minute per target with
 * the count left out since. Before, those refusals were said nowhere but the metrics (outside review 18b).
 */
export function targetHealthLog(logger: Logger): (r: TargetOutcome) => void {
  const last = new Map<string, string>();
  const refusals = new Map<string, ReturnType<typeof sparseLog>>(); // one per configured target: bounded
  return (r) => {
    if (r.outcome === "busy" || r.outcome === "rate_limited") {
      let say = refusals.get(r.target);
      if (!say) refusals.set(r.target, (say = sparseLog(logger)));
      say("target refusing scrapes past its limits (said at most once a minute)", { target: r.target, reason: r.message });
      return;
    }
    // Prometheus going away, or a path the target does not serve, say nothing about the target's health.
    if (r.outcome === "cancelled" || r.outcome === "not_found") return;
    const state = r.outcome === "success" ? (r.status !== undefined && r.status >= 400 ? `http ${r.status}` : "ok") : r.outcome;
    const before = last.get(r.target);
    if (before === state) return;
    last.set(r.target, state);
    if (state === "ok") logger.info(before === undefined ? "target answering" : "target answering again", { target: r.target });
    else if (r.outcome === "success") logger.warn("target answers with an HTTP error", { target: r.target, status: r.status });
    else logger.warn("target failing", { target: r.target, reason: r.message });
  };
}
