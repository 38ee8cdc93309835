/**
 * The paths the HTTP front serves itself (src/server/front.ts): any other
 * path is a 404, an absolute URI a proxied scrape. The front routes them, a
 * mounted front (`frontMiddleware`) claims them under its prefix, and the 404
 * names them: all from this list.
 *
 * @internal
 */

/** The status page, its JSON, http_sd discovery, the server's metrics, liveness, readiness. */
export const frontPaths = ["/", "/status.json", "/clients", "/metrics", "/healthz", "/readyz"] as const;

export type FrontPath = (typeof frontPaths)[number];

export const isFrontPath = (path: string): path is FrontPath => (frontPaths as readonly string[]).includes(path);

/** The paths as the 404 names them: "/ (status page), /status.json, ..., /healthz and /readyz". */
export const frontPathsText = `${frontPaths.slice(0, -1).map((p) => (p === "/" ? "/ (status page)" : p)).join(", ")} and ${frontPaths.at(-1)}`;
