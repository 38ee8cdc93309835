import { Code, ConnectError } from "@connectrpc/connect";

/** connect-es's words for a hostile server's frames, said in ours (one log line names the cause). @internal */
export function explain(e: ConnectError, readLimit: number): ConnectError {
  const m = e.rawMessage;
  if (/unsupported response encoding|compressed envelope/.test(m)) {
    const encoding = /encoding "([^"]{0,40})/.exec(m)?.[1];
    return new ConnectError(`the server sent compressed frames${encoding ? ` (${encoding})` : ""}; this client accepts none`, Code.Internal, undefined, undefined, e);
  }
  if (/larger than configured readMaxBytes/.test(m)) {
    const size = /message size (\d+)/.exec(m)?.[1];
    return new ConnectError(`the server sent a frame ${size ? `of ${size} bytes ` : ""}larger than the client's read limit of ${readLimit} bytes (maxServerFrameBytes)`, Code.ResourceExhausted, undefined, undefined, e);
  }
  return e;
}
