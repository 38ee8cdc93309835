/**
 * Client streams refused recently, for the status page: who (name and
 * identity, when known), from where (address), why (in words and the
 * server's own message), how often and when last. Refusals of the same kind
 * for the same name, identity and address are one entry with a count, so a
 * client retrying a wrong token every few seconds is one row, not hundreds.
 *
 * Bounded whatever peers do: at most {@link refusalsPerKind} entries per kind
 * of refusal (its Connect code), the least recently seen forgotten first, so a
 * flood of one kind (strangers without a token) never pushes out another (a
 * name clash); every string is cut.
 *
 * A name clash (`AlreadyExists`) is also logged at warn, once per name per
 * minute at most, however often the second client retries. One case is
 * routine and only counted: the refused stream came from the address and
 * identity of the client that holds the name, which is what a client looking
 * for other replicas through one load balancer address does when it lands on
 * a replica it already holds. A server that announces a replica count of 1
 * has clients that never search: there every clash is listed and logged.
 *
 * @internal
 */
import type { Logger } from "../../shared/logger.ts";
import { createRefusalLog } from "../../shared/refusal-log.ts";

/** A refusal as the server reports it (the `clientRefused` event). */
export interface Refusal {
  /** The Connect code's name, e.g. "Unauthenticated". */
  code: string;
  /** The server's message. */
  reason: string;
  /** The name the client asked for; unknown when it was refused before its hello (bad credentials). */
  name?: string;
  /** The authenticated identity, when the refusal came after authentication. */
  identity?: string;
  /** The remote address. */
  peer?: string;
  /** A step of a client's search, only counted: a replica refusing a client it is not assigned (`replicasPerClient`). */
  routine?: boolean;
}

/**
 * One kind of refusal of one client, as the status page lists it: refusals of one kind for one name, identity and
 * address. Times are Dates as kept (`RefusedEntry`) and ISO strings as `/status.json` serves them
 * (`RefusedEntry<string>`).
 */
export interface RefusedEntry<Time = Date> {
  /** The Connect code's name, e.g. "Unauthenticated". */
  code: string;
  /** Why, in words a person reads (from the code). */
  why: string;
  /** The server's message, the last time. */
  reason: string;
  name?: string;
  identity?: string;
  address?: string;
  /** Refusals counted into this entry. */
  count: number;
  /** The first refusal counted. */
  firstAt: Time;
  /** The last one. */
  lastAt: Time;
}

/** @internal */
export interface Refusals {
  record(r: Refusal): void;
  /** Every entry kept, the most recently refused first. */
  list(): RefusedEntry[];
  /** Name clashes with the holder's own address and identity (a client searching for replicas), counted only. */
  readonly routine: number;
  close(): void;
}

/** Entries kept per kind of refusal (Connect code). */
export const refusalsPerKind = 20;
/** Clash log lines per name: one per this interval. */
const clashLogMs = 60_000;
/** Names whose last clash line is remembered; past it, the sparse log's per-minute summary still bounds the lines. */
const clashNamesKept = 1_000;
/** Clash lines per minute over all names, before they are only counted (one summary line a minute). */
const clashLinesPerMinute = 20;

/** What each code means for a client that is refused, in words. */
const words: Record<string, string> = {
  Unauthenticated: "no valid credentials (missing or wrong token or certificate)",
  PermissionDenied: "its identity may not use this name",
  AlreadyExists: "the name is held by another connected client",
  InvalidArgument: "its hello was invalid",
  FailedPrecondition: "it broke the protocol before its hello",
  ResourceExhausted: "the server was full (a limit was reached)",
  Unavailable: "the server was shutting down",
  DeadlineExceeded: "it sent no hello in time",
};

const cut = (s: string | undefined, max: number) => (s === undefined ? undefined : s.length <= max ? s : `${s.slice(0, max - 1)}…`);

export function createRefusals(o: {
  logger: Logger;
  /** The client holding a name right now, if any: its address and identity. */
  holder(name: string): { address?: string; identity?: string } | undefined;
  /** Whether clients may search this server for other replicas (it announces no replica count of 1). Default true. */
  searched?: boolean;
}): Refusals {
  // Per code, insertion order is recency: a refusal seen again moves to the end.
  const kinds = new Map<string, Map<string, RefusedEntry>>();
  const clashLoggedAt = new Map<string, number>();
  const overflow = createRefusalLog(o.logger, clashLogMs);
  let windowStart = 0;
  let linesInWindow = 0;
  let routine = 0;

  function logClash(e: RefusedEntry, holder: { address?: string; identity?: string }) {
    const now = Date.now();
    const name = e.name ?? "";
    const last = clashLoggedAt.get(name);
    if (last !== undefined && now - last < clashLogMs) return;
    clashLoggedAt.delete(name);
    clashLoggedAt.set(name, now);
    if (clashLoggedAt.size > clashNamesKept) clashLoggedAt.delete(clashLoggedAt.keys().next().value as string);
    const message = `client refused: the name "${name}" is held by another connected client`;
    const fields = { name, address: e.address, identity: e.identity, holderAddress: holder.address, holderIdentity: holder.identity, refusedSoFar: e.count };
    if (now - windowStart >= clashLogMs) {
      windowStart = now;
      linesInWindow = 0;
    }
    if (++linesInWindow <= clashLinesPerMinute) o.logger.warn(message, fields);
    else overflow.refused(message, fields);
  }

  return {
    record(r) {
      if (r.routine) {
        routine++;
        return;
      }
      const holder = r.code === "AlreadyExists" && r.name !== undefined ? o.holder(r.name) : undefined;
      if (holder && o.searched !== false && holder.address === r.peer && holder.identity === r.identity) {
        routine++;
        return;
      }
      const name = cut(r.name, 253);
      const identity = cut(r.identity, 160);
      const address = cut(r.peer, 64);
      const code = cut(r.code, 32) as string;
      const key = `${name ?? ""}\0${identity ?? ""}\0${address ?? ""}`;
      let kind = kinds.get(code);
      if (!kind) kinds.set(code, (kind = new Map()));
      const now = new Date();
      const was = kind.get(key);
      kind.delete(key);
      const e: RefusedEntry = {
        code,
        why: words[code] ?? `refused (${code})`,
        reason: cut(r.reason, 400) as string,
        count: (was?.count ?? 0) + 1,
        firstAt: was?.firstAt ?? now,
        lastAt: now,
      };
      if (name !== undefined) e.name = name;
      if (identity !== undefined) e.identity = identity;
      if (address !== undefined) e.address = address;
      kind.set(key, e);
      if (kind.size > refusalsPerKind) kind.delete(kind.keys().next().value as string);
      if (code === "AlreadyExists") logClash(e, holder ?? {});
    },
    list: () =>
      [...kinds.values()]
        .flatMap((k) => [...k.values()])
        .sort((a, b) => b.lastAt.getTime() - a.lastAt.getTime()),
    get routine() {
      return routine;
    },
    close: () => overflow.close(),
  };
}
