/** The package's version (package.json's `version`), printed by `promproxy --version`. Kept in step by a test. */
export const packageVersion = "0.1.0";

/** The software version sent in hello/welcome frames. */
export const version = `promproxy-node/${packageVersion}`;

/** The oldest Node.js major version promproxy runs on (package.json's `engines.node`, checked by a test). */
export const minimumNodeMajor = 22;
