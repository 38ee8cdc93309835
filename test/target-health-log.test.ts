/**
 * The forwarder's target log (src/cli/target-health-log.ts): health said on change only; refusals past a target's
 * own limits said at most once a minute per target, with the count left out since.
 */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { targetHealthLog } from "../src/cli/target-health-log.ts";
import type { Logger } from "../src/shared/logger.ts";

function recorder(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (m: string, f?: Record<string, unknown>) => void lines.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
  return { lines, logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } as Logger };
}

test("target log: refusals once a minute per target with the count since; health on change only", () => {
  mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
  try {
    const { logger, lines } = recorder();
    const log = targetHealthLog(logger);
    const limited = (target: string) => log({ target, outcome: "rate_limited", bytes: 0, message: `target ${target} was asked for more than 2 scrapes a second` });
    for (let i = 0; i < 500; i++) limited("http://a/metrics");
    log({ target: "http://b/metrics", outcome: "busy", bytes: 0, message: "target http://b/metrics has 4 scrapes in flight, its maximum" });
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[0] as string, /^warn target refusing scrapes past its limits \(said at most once a minute\) .*"target":"http:\/\/a\/metrics".*more than 2 scrapes a second/);
    assert.match(lines[1] as string, /"target":"http:\/\/b\/metrics".*4 scrapes in flight/);
    mock.timers.tick(59_000);
    limited("http://a/metrics");
    assert.equal(lines.length, 2, "still within the minute");
    mock.timers.tick(1_000);
    limited("http://a/metrics");
    assert.equal(lines.length, 3);
    assert.match(lines[2] as string, /\(and 500 more times since the last such line\)/);
    // Health: said when it changes, never for refusals, cancels or unknown paths.
    log({ target: "http://a/metrics", outcome: "success", status: 200, bytes: 10 });
    log({ target: "http://a/metrics", outcome: "success", status: 200, bytes: 10 });
    log({ target: "http://a/metrics", outcome: "cancelled", bytes: 0 });
    log({ target: "http://a/metrics", outcome: "not_found", bytes: 0 });
    log({ target: "http://a/metrics", outcome: "timeout", bytes: 0, message: "did not answer" });
    log({ target: "http://a/metrics", outcome: "success", status: 200, bytes: 10 });
    assert.deepEqual(lines.slice(3).map((l) => l.split(" {")[0]), ["info target answering", "warn target failing", "info target answering again"]);
  } finally {
    mock.timers.reset();
  }
});
