/**
 * promproxy/conformance: the protocol conformance kit. Runs scripted servers
 * against a client implementation in any language (a command template) and
 * reports, scenario by scenario, what the protocol asks of a client and
 * whether it did it. `promproxy conformance` is its command line.
 *
 * Not part of the runtime: `promproxy/client` and `promproxy/server` never
 * import it (test/import-graph.test.ts keeps it so).
 *
 * @packageDocumentation
 */
export { passed, runConformance, scenarioIds, type ConformanceOptions, type ScenarioResult } from "./run-conformance.ts";
export { allScenarios } from "./scenarios/all.ts";
export { formatFailureOutput, formatTable } from "./report.ts";
export { defaultBodyBytes } from "./client-process.ts";
