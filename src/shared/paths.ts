/**
 * Whether a request path (path and query) falls under an announced target
 * path: "" means "/metrics" exactly (an embedded registry), "/" means any path,
 * anything else is a prefix ending at a segment boundary.
 *
 * @internal
 */
export function pathMatches(prefix: string, path: string): boolean {
  const q = path.indexOf("?");
  const p = q < 0 ? path : path.slice(0, q);
  if (prefix === "") return p === "/metrics";
  if (prefix === "/" || p === prefix) return true;
  return p.startsWith(prefix.endsWith("/") ? prefix : prefix + "/");
}
