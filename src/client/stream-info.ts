/** One established stream, as the callbacks report it (`onConnected`, `onDisconnected`). */
export interface StreamInfo {
  sessionId: string;
  /** The replica holding the stream, as its welcome named it ("" from a server that names none). */
  replicaId: string;
  /** Where it was dialled: "host:port", or "host:port (address)". */
  server: string;
}
