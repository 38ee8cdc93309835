/** The package's version (package.json's `version`), printed by `promproxy --version`. Kept in step by a test. */
export const packageVersion = "0.1.0";

/** The software version sent in hello/welcome frames. */
export const version = `promproxy-node/${packageVersion}`;

/** The oldest Node.js major version promproxy runs on (the Docker image's). */
export const minimumNodeMajor = 22;

/**
 * The oldest Node.js version promproxy runs on: package.json's `engines.node`
 * (checked by a test), undici 8's own minimum; the CLI refuses an older one.
 */
export const minimumNode = "22.19.0";

/** Whether `version` ("22.18.1", "v20.11.0") is older than {@link minimumNode}. */
export function olderThanMinimumNode(version: string): boolean {
  const got = version.replace(/^v/, "").split(".").map(Number);
  const want = minimumNode.split(".").map(Number);
  for (let i = 0; i < want.length; i++) if ((got[i] ?? 0) !== want[i]) return (got[i] ?? 0) < want[i]!;
  return false;
}
