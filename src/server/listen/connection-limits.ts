import * as net from "node:net";
import type { Logger } from "../../shared/logger.ts";
import { createRefusalLog } from "../../shared/refusal-log.ts";
import { sourceKey } from "../../shared/source-key.ts";

/** @internal */
export interface ConnectionLimitsOptions {
  /** Open connections at most. */
  maxConnections: number;
  /** Open connections at most per source (IPv4 address, IPv6 /64). */
  maxConnectionsPerAddress: number;
  logger: Logger;
  /** Counts each refused connection, by the limit it met. */
  onRefused?: (limit: "maxConnections" | "maxConnectionsPerAddress") => void;
}

/** @internal */
export interface ConnectionLimits {
  /**
   * Counts a new connection in (until it closes) and returns true, or refuses
   * it and returns false. A refused cleartext connection gets an HTTP/1.1 503
   * with a one-line body, then is closed; a TLS one is closed at once.
   */
  admit(socket: net.Socket, cleartext: boolean): boolean;
  /** Connections counted in right now. */
  open(): number;
  /** Stops the refusal log's timer. */
  close(): void;
}

/** Refused connections being answered (503) at once, at most; beyond, they are closed without a word. */
const maxAnswering = 64;
/** How long a refused connection may take to read its 503 before it is destroyed. */
const answerMs = 1_000;

/**
 * Caps open connections, in all and per source, at accept time, before a
 * byte is read: a peer cannot pin more sockets (file descriptors, HTTP/2
 * sessions) than its share. Refusals are logged once per minute.
 *
 * @internal
 */
export function createConnectionLimits(o: ConnectionLimitsOptions): ConnectionLimits {
  const perSource = new Map<string, number>();
  let total = 0;
  let answering = 0;
  const log = createRefusalLog(o.logger);

  const refuse = (socket: net.Socket, cleartext: boolean, why: string, fields: { limit: "maxConnections" | "maxConnectionsPerAddress" } & Record<string, unknown>) => {
    log.refused(`refusing connections: ${why}`, fields);
    o.onRefused?.(fields.limit);
    if (!cleartext || answering >= maxAnswering) return void socket.destroy();
    answering++;
    const body = `promproxy: ${why}\n`;
    const timer = setTimeout(() => socket.destroy(), answerMs);
    socket.once("close", () => {
      answering--;
      clearTimeout(timer);
    });
    // Read (and drop) what the peer sends, so that closing ends with a FIN the peer reads after the answer,
    // not a reset that may discard it.
    socket.on("data", () => {});
    socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  };

  return {
    admit(socket, cleartext) {
      const address = socket.remoteAddress;
      if (address === undefined) {
        socket.destroy(); // closed before we saw it
        return false;
      }
      const source = sourceKey(address);
      const mine = perSource.get(source) ?? 0;
      if (total >= o.maxConnections) {
        refuse(socket, cleartext, `too many connections (${o.maxConnections}, the maximum)`, { limit: "maxConnections", max: o.maxConnections, source });
        return false;
      }
      if (mine >= o.maxConnectionsPerAddress) {
        refuse(socket, cleartext, `too many connections from ${source} (${o.maxConnectionsPerAddress}, the maximum per address)`, {
          limit: "maxConnectionsPerAddress",
          max: o.maxConnectionsPerAddress,
          source,
        });
        return false;
      }
      total++;
      perSource.set(source, mine + 1);
      socket.once("close", () => {
        total--;
        const left = (perSource.get(source) ?? 1) - 1;
        if (left > 0) perSource.set(source, left);
        else perSource.delete(source);
      });
      return true;
    },
    open: () => total,
    close: () => log.close(),
  };
}
