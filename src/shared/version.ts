/** The software version sent in hello/welcome frames. Kept in step with package.json by a test. */
export const version = "promproxy-node/0.1.0";
