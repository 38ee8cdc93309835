/** A Scrape stream that sends nothing (no hello): it holds one of the server's maxPendingHellos places. */
import { ConnectError, createClient as createRpcClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ScrapeService } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createQueue } from "../../src/shared/queue.ts";

/** Opens the stream; `ended` settles with how the server ended it, `close` ends it from this side. */
export function silentStream(url: string): { ended: Promise<ConnectError | undefined>; close(): void } {
  const sessionManager = new Http2SessionManager(url);
  const rpc = createRpcClient(ScrapeService, createGrpcTransport({ baseUrl: url, sessionManager }));
  const call = new AbortController();
  const out = createQueue<never>();
  const ended = (async () => {
    try {
      for await (const _ of rpc.scrape(out, { signal: call.signal })) void _;
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    } finally {
      sessionManager.abort();
    }
  })();
  return { ended, close: () => call.abort() };
}
