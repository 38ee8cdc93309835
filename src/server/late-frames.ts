/**
 * What a client may still send for scrapes that are no longer in flight on
 * its stream (late frames), and what it may not. A scrape given up on (a
 * cancel crossing the client's answer) may still send one head, body bytes
 * within the credit it had left, and one end: the last `maxGivenUpKept` are
 * held to that each, older ones all together (what they had left is added up
 * when they are forgotten). Beyond that, a small allowance of frames
 * (`maxSlack`, refilled by `slackPerEnd` for each scrape that ends) takes
 * duplicates and frames after an end; a second head for one of the last
 * `maxRecentKept` scrapes that ended is never taken. Anything more ends the
 * stream: a client sending 300 KiB heads for a scrape it had ended, without
 * end, was decoded and dropped for as long as it kept on (a review).
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Scrapes given up on held one by one to their credit, one late head and one end. */
const maxGivenUpKept = 128;
/** Scrapes that ended whose late head is remembered, to refuse a second one. */
const maxRecentKept = 16;
/** Late frames taken beyond what scrapes given up on may send: at most this many at a time... */
const maxSlack = 16;
/** ...given back for each scrape that ends (a duplicate end, a chunk after an end). */
const slackPerEnd = 2;

/** A scrape given up on, until its end comes: the credit it had left; whether a head came since. */
type GivenUp = { left: number; head: boolean };

/** The late frames of one stream. @internal */
export class LateFrames {
  givenUp: Map<bigint, GivenUp> | undefined;
  /** Scrapes that ended, by id: whether a late head came since. */
  recent: Map<bigint, boolean> | undefined;
  /** What the scrapes given up on and forgotten may still send: heads and ends; body bytes. */
  untrackedFrames = 0;
  untrackedBytes = 0;
  slack = 0;

  /** A scrape given up on, its credit left `allowance`. */
  gaveUp(id: bigint, allowance: number): void {
    const m = (this.givenUp ??= new Map());
    m.set(id, { left: allowance, head: false });
    if (m.size > maxGivenUpKept) {
      const [oldest, l] = m.entries().next().value as [bigint, GivenUp];
      m.delete(oldest);
      this.untrackedFrames += l.head ? 1 : 2;
      this.untrackedBytes += l.left;
    }
  }

  /** A scrape ended (`lateHead`: a head came after it was given up on). */
  ended(id: bigint, lateHead = false): void {
    const m = (this.recent ??= new Map());
    m.set(id, lateHead);
    if (m.size > maxRecentKept) m.delete(m.keys().next().value as bigint);
    this.slack = Math.min(maxSlack, this.slack + slackPerEnd);
  }

  /** Forgets the scrapes given up on (the stream ended). */
  clear(): void {
    this.givenUp = undefined;
  }

  /** Takes a late frame of `kind` with `bytes` body bytes for scrape `id`, issued; throws the violation otherwise. */
  take(id: bigint, kind: string, bytes: number): void {
    const head = kind === "head" || kind === "result";
    const end = kind === "end" || kind === "result";
    const l = this.givenUp?.get(id);
    if (head && (l ? l.head : this.recent?.get(id))) {
      throw new ConnectError(`scrape ${id}: a second late head (one may cross a cancel or follow its end, no more)`, Code.InvalidArgument);
    }
    if (head && !l && this.recent?.has(id)) this.recent.set(id, true);
    if (l !== undefined) {
      if (bytes > l.left) throw new ConnectError(`scrape ${id}: ${kind} beyond the granted credit`, Code.ResourceExhausted);
      l.left -= bytes;
      l.head ||= head;
      if (end) {
        this.givenUp?.delete(id); // its late head now remembered with the scrapes that ended
        return this.ended(id, l.head);
      }
      if (bytes > 0 || head) return;
    } else if ((head || end) && this.untrackedFrames > 0) {
      return void this.untrackedFrames--;
    } else if (!head && !end && bytes > 0 && bytes <= this.untrackedBytes) {
      return void (this.untrackedBytes -= bytes);
    }
    if (this.slack === 0) {
      throw new ConnectError(`scrape ${id}: a late ${kind} beyond the ${maxSlack} late frames allowed after the scrapes that ended`, Code.InvalidArgument);
    }
    this.slack--;
  }
}
