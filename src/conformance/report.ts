/**
 * The conformance table, as Markdown: readable in a terminal, and pasted as it
 * is into a pull request or a closing note.
 *
 * @internal
 */
import type { ScenarioResult } from "./run-conformance.ts";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

/** The pass/fail table: scenario, result, time, detail; then one summary line. */
export function formatTable(results: ScenarioResult[], { client, totalMs }: { client: string; totalMs: number }): string {
  const lines = [
    `promproxy conformance: ${cell(client)}`,
    "",
    "| scenario | result | time | detail |",
    "|---|---|---|---|",
    ...results.map((r) => `| ${r.id} | ${r.verdict === "fail" ? "**FAIL**" : r.verdict} | ${(r.ms / 1000).toFixed(1)} s | ${cell(r.detail)} |`),
    "",
    summary(results, totalMs),
  ];
  return lines.join("\n");
}

/** "17 passed, 0 failed, 1 n/a of 18 scenarios in 41.2 s". */
export function summary(results: ScenarioResult[], totalMs: number): string {
  const count = (v: ScenarioResult["verdict"]) => results.filter((r) => r.verdict === v).length;
  return `${count("pass")} passed, ${count("fail")} failed, ${count("n/a")} n/a of ${results.length} scenarios in ${(totalMs / 1000).toFixed(1)} s`;
}

/** For each failed scenario, the last lines its client printed. */
export function formatFailureOutput(results: ScenarioResult[]): string {
  return results
    .filter((r) => r.verdict === "fail" && r.clientOutput !== "")
    .map((r) => `--- ${r.id}: last output of the client\n${r.clientOutput}`)
    .join("\n");
}
