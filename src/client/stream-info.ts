/** One established stream, as the callbacks report it. */
export interface StreamInfo {
  sessionId: string;
  /** The replica holding the stream, as its welcome named it; "" from servers that predate replica ids. */
  replicaId: string;
  /** Where it was dialled: "host:port", or "host:port (address)". */
  server: string;
}
