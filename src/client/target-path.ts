import { checkRequestPath, pathMatches } from "../shared/paths.ts";
import { ScrapeErrorReason, TargetError, type ServeRequest } from "./target.ts";

/**
 * The forwarder's own gate, whatever the server let through: a scrape for
 * another port, a path outside the target's prefix, or a path not in
 * canonical form (an encoded "/", "\" or ".", double encoding, ";", "//",
 * dot segments: see `checkRequestPath`) is refused with NOT_FOUND and never
 * reaches the exporter. Returns the error, or undefined when the scrape may go.
 *
 * @internal
 */
export function refusedScrape(req: Pick<ServeRequest, "port" | "path">, port: number, prefix: string, display: string): TargetError | undefined {
  const bad = checkRequestPath(req.path);
  if (bad) return new TargetError(ScrapeErrorReason.NOT_FOUND, `target ${display}: ${bad}; not sent to the exporter`);
  if ((port !== 0 && req.port !== port) || !pathMatches(prefix, req.path)) {
    return new TargetError(ScrapeErrorReason.NOT_FOUND, `target ${display} does not serve port ${req.port || "(none)"} path ${JSON.stringify(req.path.slice(0, 200))}`);
  }
  return undefined;
}
