/** What a connected client announced, and where it came from. */
export interface ClientInfo {
  /** The client's name, lower case. */
  name: string;
  /** Labels the client announced. */
  labels: Record<string, string>;
  /** Targets the client serves (port 0: any port). */
  targets: { port: number; path: string; labels: Record<string, string> }[];
  /** Session id given in the welcome. */
  sessionId: string;
  /** Client software version as announced. */
  version: string;
  /** When the stream was accepted. */
  connectedAt: Date;
  /** Scrapes in flight right now. */
  scrapesInFlight: number;
  /** The authenticated identity holding the name, when an auth interceptor set one. */
  identity?: string;
  /** The remote address the stream came from, when known (a load balancer's, behind one). */
  address?: string;
}
