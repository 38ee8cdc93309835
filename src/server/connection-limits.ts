import * as net from "node:net";
import type { Logger } from "../shared/logger.ts";
import { createRefusalLog } from "./refusal-log.ts";

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

/**
 * The source a connection is counted against: an IPv4 address (also when
 * IPv4-mapped), or the /64 prefix of an IPv6 address (one host or one
 * customer usually holds a whole /64, so counting single IPv6 addresses would
 * cap nothing).
 *
 * @internal
 */
export function sourceKey(address: string): string {
  const plain = address.replace(/%.*$/, ""); // zone id (fe80::1%eth0)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(plain)) return plain;
  const [head = "", tail] = plain.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; it never reaches the first four unless the address is odd.
  const rightGroups = right.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - rightGroups).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => (g.includes(".") ? g : Number.parseInt(g, 16).toString(16))).join(":")}::/64`;
}
