/**
 * Whether one scrape's result is what Prometheus can use: a 200 head with a
 * Content-Type, a Content-Length (when sent) that matches the body, and a body
 * that reads as a text exposition (Prometheus text 0.0.4 or OpenMetrics).
 *
 * @internal
 */
import { gunzipSync } from "node:zlib";
import type { ScrapeRecord } from "./scrape-ledger.ts";
import { reasonName } from "./scrape-ledger.ts";

/** A sample line: a metric name (or a quoted UTF-8 name in braces) and then a value. */
const sampleLine = /^(?:[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?|\{.*\})[ \t]+\S+/;

/** The value of a head's header (names compared in lower case). */
export function headerOf(r: ScrapeRecord, name: string): string | undefined {
  return r.head?.value.headers.find((h) => h.name.toLowerCase() === name)?.value;
}

/**
 * Checks a scrape that should have succeeded. Returns what is wrong in one
 * line, or undefined. `headOnly`: a HEAD order (a head, no body).
 */
export function checkResult(r: ScrapeRecord, { headOnly = false } = {}): string | undefined {
  const id = `scrape ${r.id}`;
  if (!r.end) return `${id}: no end`;
  if (r.end.error) return `${id}: ended with error ${reasonName(r.end.error.reason)}: ${r.end.error.message.slice(0, 160)}`;
  if (!r.head) return `${id}: an end without a head`;
  const status = r.head.value.status;
  if (status !== 200) return `${id}: status ${status}, want 200`;
  const contentType = headerOf(r, "content-type");
  if (!contentType) return `${id}: a 200 head without content-type`;
  if (headOnly) {
    if (r.chunks > 0) return `${id}: ${r.chunks} chunks (${r.bodyBytes} bytes) for a HEAD order`;
    return undefined;
  }
  const length = headerOf(r, "content-length");
  if (length !== undefined && Number(length) !== r.bodyBytes) return `${id}: content-length ${length}, but ${r.bodyBytes} body bytes`;
  let body = Buffer.concat(r.body);
  const encoding = headerOf(r, "content-encoding");
  if (encoding === "gzip") {
    try {
      body = gunzipSync(body);
    } catch (e) {
      return `${id}: content-encoding gzip, but the body does not gunzip (${(e as Error).message})`;
    }
  } else if (encoding !== undefined && encoding !== "identity") {
    return `${id}: content-encoding ${encoding}, which the order did not accept`;
  }
  return checkExposition(body.toString("utf8"), id);
}

/** Checks that a body reads as a text exposition; returns the first problem, or undefined. */
export function checkExposition(text: string, what: string): string | undefined {
  if (text.length === 0) return `${what}: an empty body`;
  if (!text.endsWith("\n")) return `${what}: the body does not end with a newline`;
  const lines = text.slice(0, -1).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line === "" || line.startsWith("#")) continue;
    if (!sampleLine.test(line)) return `${what}: line ${i + 1} is no sample: ${JSON.stringify(line.slice(0, 80))}`;
  }
  return undefined;
}

/** "2.1 MB", "812 B". */
export function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}
