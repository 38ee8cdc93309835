import { parseArgs } from "node:util";
import { allScenarios, defaultBodyBytes, formatFailureOutput, formatTable, passed, runConformance } from "../conformance/index.ts";
import { CliError, parseDurationMs, parsePositiveInt } from "./util.ts";

export const conformanceUsage = `usage: promproxy conformance --client "COMMAND {server} {name} {size}" [options]

Checks a promproxy client implementation against the protocol: starts servers (scripted ones that
misbehave on purpose, and the real one), runs the client under test against them, one process per
scenario, and prints a table. Exits 0 only if every scenario passed or is about an optional feature
the client does not offer; a failure, or a rule the kit could not exercise (n/a), exits 1.

  --client CMD            the client under test, run by /bin/sh; {server} becomes the server URL,
                          {name} the client's name, {size} the least body to serve in bytes (also in
                          PROMPROXY_SERVER, PROMPROXY_NAME, PROMPROXY_BODY_BYTES)
  --only IDS              comma-separated scenario ids (see --list)                  [all]
  --concurrency N         scenarios run at once                                        [4]
  --reconnect-within D    longest wait for a client to come back after a restart    [35s]
  --body-bytes N          the value of {size}                                   [${defaultBodyBytes}]
  --list                  list the scenarios and exit

The client serves its own registry at /metrics, at least {size} bytes of any exposition (pad it with
series): rules about chunk sizes and credit show only on a body larger than a chunk, and a smaller
body makes those scenarios n/a. The client must exit with a non-zero code when the server refuses it
for good before its first welcome (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT), and leave
cleanly on SIGTERM (half-close its stream). PROTOCOL.md lists what each scenario checks.`;

const optionSpec = {
  client: { type: "string" },
  only: { type: "string" },
  concurrency: { type: "string" },
  "reconnect-within": { type: "string" },
  "body-bytes": { type: "string" },
  list: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export async function runConformanceCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: optionSpec, strict: true, allowPositionals: false });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${conformanceUsage}`);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(conformanceUsage + "\n");
    return 0;
  }
  if (v.list) {
    for (const s of allScenarios) process.stdout.write(`${s.id.padEnd(24)} ${s.title}\n`);
    return 0;
  }
  if (!v.client?.trim()) throw new CliError(`--client is required\n\n${conformanceUsage}`);
  const client = v.client;
  const only = v.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const known = new Set(allScenarios.map((s) => s.id));
  const unknown = only?.filter((id) => !known.has(id)) ?? [];
  if (unknown.length) throw new CliError(`--only: unknown scenario ${unknown.join(", ")} (see --list)`);
  const concurrency = v.concurrency ? parsePositiveInt(v.concurrency, "--concurrency") : 4;
  const reconnectWithinMs = v["reconnect-within"] ? parseDurationMs(v["reconnect-within"], "--reconnect-within") : 35_000;
  const bodyBytes = v["body-bytes"] ? parsePositiveInt(v["body-bytes"], "--body-bytes") : defaultBodyBytes;

  const count = only?.length ?? allScenarios.length;
  process.stderr.write(`running ${count} scenarios against: ${client}\n`);
  const started = performance.now();
  const results = await runConformance({
    client,
    only,
    concurrency,
    reconnectWithinMs,
    bodyBytes,
    onResult: (r) => process.stderr.write(`  ${r.verdict.padEnd(4)} ${r.id} (${(r.ms / 1000).toFixed(1)} s)\n`),
  });
  const totalMs = performance.now() - started;
  process.stdout.write(formatTable(results, { client, totalMs }) + "\n");
  const failures = formatFailureOutput(results);
  if (failures) process.stderr.write(`\n${failures}\n`);
  return passed(results) ? 0 : 1;
}
