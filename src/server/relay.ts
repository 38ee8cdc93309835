/**
 * Relays one scrape's result into Prometheus' HTTP response: the checked head,
 * the body as it arrives, credit back to the client only as fast as
 * Prometheus reads, and a clear status and one-line body for every failure.
 * Part of the HTTP front: HTTP statuses are decided here.
 *
 * @internal
 */
import type { ServerResponse } from "node:http";
import type { Activity } from "./activity.ts";
import type { Coordinator, ScrapeRequest } from "./coordinator.ts";
import type { ServerMetrics } from "./metrics.ts";
import { reserveCredit } from "./listen/answer-slices.ts";
import { sentToKernel } from "./listen/sent-to-kernel.ts";
import { atTurnEnd, corkForTurn } from "./listen/turn-cork.ts";
import { holdChunks, releaseChunks, type HeldChunks } from "./listen/held-chunks.ts";
import type { RefusalLogs } from "../shared/refusal-log.ts";
import type { CheckedHead } from "./result-head.ts";
import type { ScrapeFailure, ScrapeHandle, ScrapeOutcome } from "./scrape-types.ts";

/** The HTTP status of every way a scrape can fail. */
export const httpStatusOf: Record<ScrapeOutcome, number> = {
  unknown_client: 404,
  warming_up: 503,
  vanished: 503,
  not_found: 404,
  bad_request: 400,
  busy: 503,
  shutting_down: 503,
  timeout: 504,
  disconnected: 502,
  too_large: 502,
  bad_result: 502,
  target_unreachable: 502,
  client_error: 502,
  cancelled: 502,
  prometheus_gone: 499,
};

/** The `{ outcome }` label set of each outcome, made once: the metrics of a scrape allocate none. */
const outcomeLabels = new Map<string, { outcome: string }>();
function labelsOf(outcome: string): { outcome: string } {
  let l = outcomeLabels.get(outcome);
  if (!l) outcomeLabels.set(outcome, (l = { outcome }));
  return l;
}

/** Response headers a result head may set; removed again before an error body. */
const resultHeaders = ["content-type", "content-encoding", "content-length"];

/** Answers with a status and a one-line `promproxy: ` body; cuts the response when its head went out already. */
export function reply(res: ServerResponse, status: number, message: string, headers: Record<string, string | string[]> = {}) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const h of resultHeaders) res.removeHeader(h);
  const body = `promproxy: ${message}\n`;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

/** What a relay needs besides the request. */
export interface RelayDeps {
  coordinator: Coordinator;
  metrics: ServerMetrics;
  activity: Activity;
  /** Body bytes to pass on before granting them back to the client in one credit frame. */
  grantAt: number;
  /**
   * The first credit a scrape asks for (server option creditBytes), reserved in the unread-answer budgets of its
   * connection (src/server/listen/answer-slices.ts): less when they are nearly spent. Absent: the client's default.
   */
  creditBytes?: number;
  /**
   * Where an answer cut after its head had gone (a result that failed late: too short or too long for its
   * Content-Length, its client gone, ...) is logged, by client name, at most once a minute each. Default: not logged.
   */
  cutLog?: RefusalLogs;
}

/**
 * Orders the scrape and relays its result into `res`; records the outcome.
 *
 * The head is written with the first body bytes or the end (`writeHead` with
 * the checked headers as one array, no header set one by one); a body that
 * arrives whole at once (its declared Content-Length in one chunk, as a
 * single `result` frame brings it) waits for the end and leaves with it,
 * `end(body)`: head and body in one write, no cork and uncork a tick later.
 *
 * Any other body's first bytes are held here with the head until the loop's
 * turn ends (src/server/listen/turn-cork.ts), when they would leave the socket
 * anyway: a result that fails within that turn (a client that declared a
 * Content-Length of 1 MB, sent 50 KB and its end) still gets its clear 502,
 * its keep-alive connection kept. A failure after bytes left cuts the
 * connection (Prometheus sees a broken answer) and is logged (`cutLog`).
 */
export function relayScrape(deps: RelayDeps, r: ScrapeRequest, res: ServerResponse, headOnly: boolean): void {
  const { coordinator, metrics, activity, cutLog } = deps;
  // A smaller first credit (its budgets nearly spent) is granted back in smaller steps, or the client would wait for good.
  const creditBytes = deps.creditBytes === undefined ? undefined : reserveCredit(res, deps.creditBytes);
  const grantAt = creditBytes === undefined || creditBytes >= deps.creditBytes! ? deps.grantAt : Math.min(deps.grantAt, Math.max(1, creditBytes >> 1));
  const started = performance.now();
  let bytes = 0;
  let pending = 0;
  let waitingDrain = false;
  /**
   * Since when its answer has taken nothing: a write had to be queued, no 'drain' came since, and no byte went to
   * the kernel since the last look (`sent`). A drain waits for the whole credit to go out: a steady slow reader
   * (300 KB/s of 20 MB) got none for many seconds and was cut as stalled (outside review 17b).
   */
  let stalledSince = 0;
  let sent = 0;
  let over = false;
  /** The result head, until it is written. */
  let head: CheckedHead | undefined;
  /** The whole declared body, held for the end. */
  let whole: Uint8Array | undefined;
  /** Body bytes held with the head until the turn ends (see above). */
  let held: HeldChunks | undefined;
  const writeHead = (h: CheckedHead) => {
    head = undefined;
    const flat: string[] = [];
    for (const [name, value] of h.headers) flat.push(name, value);
    res.writeHead(h.status, flat);
  };
  /**
   * Holds body bytes that came before the head left (above); the first arms the turn's end, when the head and the
   * held bytes leave unless the scrape ended meanwhile. Out of onChunk: each byte of bytecode there is taken from
   * what V8 inlines into the hot read path above it (bench/measurements.md, "the first turn held").
   */
  const hold = (data: Uint8Array) => {
    pending += data.byteLength;
    if (held) {
      held.items[held.n++] = data;
      return;
    }
    // Made only for a body in pieces: a single result's relay allocates nothing for it.
    held = holdChunks(data);
    atTurnEnd(() => {
      const chunks = held;
      held = undefined;
      if (over || !chunks) return;
      writeHead(head!);
      corkForTurn(res);
      let ok = true;
      for (let i = 0; i < chunks.n; i++) ok = res.write(chunks.items[i]!);
      releaseChunks(chunks);
      if (!ok) {
        // As after any write that had to be queued (onChunk).
        waitingDrain = true;
        stalledSince = performance.now();
        sent = sentToKernel(res.socket);
        res.once("drain", onDrain);
      } else if (pending >= grantAt) {
        handle.grant(pending);
        pending = 0;
      }
    });
  };
  const finish = (failure?: ScrapeFailure) => {
    if (over) return;
    over = true;
    res.off("close", onClose);
    res.off("drain", onDrain);
    const outcome = failure?.outcome ?? "success";
    const durationMs = performance.now() - started;
    // The answer's last bytes leave first (end() writes at once); the bookkeeping follows.
    if (!failure) {
      if (head) writeHead(head);
      if (held) {
        corkForTurn(res); // with the end, as they would have left
        for (let i = 0; i < held.n; i++) res.write(held.items[i]!);
      }
      if (whole) res.end(whole);
      else res.end();
    } else if (failure.outcome !== "prometheus_gone") {
      // Past its head the answer can only be cut (Prometheus sees an empty or short reply): said, as it says nothing.
      if (res.headersSent) cutLog?.refused(r.name, `answer to Prometheus cut after its head had gone: ${failure.message}`, { client: r.name, outcome, bytes });
      reply(res, httpStatusOf[failure.outcome], failure.message);
    } // else nobody left to answer
    whole = undefined;
    if (held) releaseChunks(held);
    held = undefined;
    const labels = labelsOf(outcome);
    metrics.scrapes.inc(labels);
    metrics.duration.observe(labels, durationMs / 1000);
    activity.emit("scrapeFinished", { name: r.name, port: r.port, outcome, at: new Date(), durationMs, bytes, message: failure?.message });
  };
  const onDrain = () => {
    waitingDrain = false;
    stalledSince = 0;
    if (over || pending === 0) return;
    handle.grant(pending);
    pending = 0;
  };
  const onClose = () => {
    if (over) return;
    handle.cancel("prometheus went away");
    finish({ outcome: "prometheus_gone", message: "Prometheus went away before the result" });
  };

  const asked: ScrapeRequest = { ...r, remote: r.remote ?? res.socket?.remoteAddress };
  if (creditBytes !== undefined) asked.creditBytes = creditBytes;
  const result = coordinator.scrape(asked, {
    onHead(h) {
      head = h;
    },
    onChunk(data) {
      metrics.bytes.inc(data.byteLength);
      bytes += data.byteLength;
      // A HEAD request's head waits for the end: body bytes are only counted, and a failure can still be a clear status.
      if (head && !headOnly) {
        // The whole body at once: no more may follow (the session holds the body to its Content-Length, so no
        // chunk this long comes after held bytes).
        if (head.contentLength === data.byteLength) {
          whole = data;
          return;
        }
        return hold(data); // the head leaves with them at the turn's end
      }
      if (!headOnly) corkForTurn(res);
      const ok = headOnly ? true : res.write(data);
      pending += data.byteLength;
      if (!ok) {
        if (!waitingDrain) {
          waitingDrain = true;
          stalledSince = performance.now();
          sent = sentToKernel(res.socket);
          res.once("drain", onDrain);
        }
      } else if (!waitingDrain && pending >= grantAt) {
        handle.grant(pending);
        pending = 0;
      }
    },
    onEnd: finish,
    stalledMs: () => {
      if (stalledSince === 0) return 0;
      const now = sentToKernel(res.socket);
      if (now > sent) [sent, stalledSince] = [now, performance.now()]; // it took something since the last look
      return performance.now() - stalledSince;
    },
  });
  if ("outcome" in result) return finish(result);
  const handle: ScrapeHandle = result;
  res.on("close", onClose);
}
