/**
 * The conformance table, as Markdown: readable in a terminal, and pasted as it
 * is into a pull request or a closing note.
 *
 * @internal
 */
import type { ScenarioResult } from "./run-conformance.ts";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

const shown: Record<ScenarioResult["verdict"], string> = { pass: "pass", fail: "**FAIL**", "n/a": "**n/a**", "not offered": "not offered" };

/** The pass/fail table: scenario, result, time, detail; then one summary line. */
export function formatTable(results: ScenarioResult[], { client, totalMs }: { client: string; totalMs: number }): string {
  const lines = [
    `promproxy conformance: ${cell(client)}`,
    "",
    "| scenario | result | time | detail |",
    "|---|---|---|---|",
    ...results.map((r) => `| ${r.id} | ${shown[r.verdict]} | ${(r.ms / 1000).toFixed(1)} s | ${cell(r.detail)} |`),
    "",
    summary(results, totalMs),
  ];
  return lines.join("\n");
}

/**
 * "25 passed, 0 failed, 0 n/a, 1 not offered of 26 scenarios in 41.2 s: PASS". The verdict is FAIL when any
 * scenario failed or could not be exercised (n/a).
 */
export function summary(results: ScenarioResult[], totalMs: number): string {
  const count = (v: ScenarioResult["verdict"]) => results.filter((r) => r.verdict === v).length;
  const ok = count("fail") === 0 && count("n/a") === 0;
  return `${count("pass")} passed, ${count("fail")} failed, ${count("n/a")} n/a, ${count("not offered")} not offered of ${results.length} scenarios in ${(totalMs / 1000).toFixed(1)} s: ${ok ? "PASS" : "FAIL"}`;
}

/** For each failed scenario, the last lines its client printed. */
export function formatFailureOutput(results: ScenarioResult[]): string {
  return results
    .filter((r) => (r.verdict === "fail" || r.verdict === "n/a") && r.clientOutput !== "")
    .map((r) => `--- ${r.id}: last output of the client\n${r.clientOutput}`)
    .join("\n");
}
