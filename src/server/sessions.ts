import { Code, ConnectError } from "@connectrpc/connect";
import type { Session } from "./session.ts";

/**
 * The session registry: which client holds which name. Like PushProx's
 * coordinator, but a name maps to a live stream instead of a poll queue, so an
 * unknown name is answered at once and nothing is kept per unknown name.
 *
 * @internal
 */
export interface Sessions {
  /** Takes the name for the session, or throws AlreadyExists / ResourceExhausted. */
  add(session: Session): void;
  /** Frees the name, if this session still holds it. */
  remove(session: Session): void;
  get(name: string): Session | undefined;
  all(): IterableIterator<Session>;
  readonly size: number;
}

export function createSessions(maxClients: number): Sessions {
  const byName = new Map<string, Session>();
  return {
    add(session) {
      const name = session.info.name;
      const holder = byName.get(name);
      if (holder) {
        throw new ConnectError(`the name "${name}" is held by another connected client (session ${holder.info.sessionId})`, Code.AlreadyExists);
      }
      if (byName.size >= maxClients) {
        throw new ConnectError(`the server has its maximum of ${maxClients} clients`, Code.ResourceExhausted);
      }
      byName.set(name, session);
    },
    remove(session) {
      if (byName.get(session.info.name) === session) byName.delete(session.info.name);
    },
    get(name) {
      return byName.get(name);
    },
    all() {
      return byName.values();
    },
    get size() {
      return byName.size;
    },
  };
}
