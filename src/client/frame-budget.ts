/**
 * How fast the client reads its servers' frames (option `maxServerFramesPerSecond`, per client): each stream has a
 * bucket that fills at its equal share of the client's rate and holds at most one second's worth, so a server that
 * makes the client open many streams (naming many replicas) gets no more read in all. What a read costs is taken
 * from it ({@link readCost}): a frame each, or the HTTP/2 DATA frames it came in if more (a drip of one-byte DATA
 * frames), and one more per 64 bytes past 256 a frame (a frame packed with tiny repeated entries costs its
 * decoding). A read that overdraws the bucket says how long to stop reading, and the stream's reader pauses that
 * long; HTTP/2 flow control then holds the server back, its frames waiting in its own buffers, not the host's. A
 * server that orders, cancels, pings or grants credit faster costs the host a bounded share of a core, whatever it
 * sends; one keeping to the protocol (an order per scrape, a credit per half megabyte or so of body, a ping per
 * heartbeat) never comes near it.
 *
 * @internal
 */
/**
 * What reading `bytes` that completed `frames` frames costs, in frames: the frames, and one more per 64 bytes past
 * 256 a frame. Decoding costs by the entry, and an entry can take 2 bytes: a 64 KiB frame of 32,000 empty headers
 * costs a protobuf decoder 3-15 ms, and counts about 1,020 here (a second of the default budget). A real server's
 * frames (an order, a credit, a ping) are under 256 bytes: one each.
 */
export const readCost = (frames: number, bytes: number) => frames + (Math.max(0, bytes - frames * 256) >> 6);

export interface FrameBudget {
  /**
   * Takes `frames` from the bucket; returns 0 while the bucket holds enough, otherwise the milliseconds until it
   * is out of debt again: read nothing more until then.
   */
  spend(frames: number): number;
}

/** A bucket filling at `perSecond()` frames a second (asked at every read: a stream's share changes). */
export function createFrameBudget(perSecond: () => number, now: () => number = Date.now): FrameBudget {
  let tokens = perSecond();
  let at = now();
  return {
    spend(frames) {
      const t = now();
      const rate = perSecond();
      const perMs = rate / 1000;
      tokens = Math.min(rate, tokens + (t - at) * perMs) - frames;
      at = t;
      return tokens >= 0 ? 0 : Math.ceil(-tokens / perMs);
    },
  };
}

/** A client's frame budget, shared by its streams. @internal */
export interface FrameShare {
  /** A stream's budget, its share counted until `leave()`. */
  join(): FrameBudget & { leave(): void };
}

export function createFrameShare(perSecond: number, now: () => number = Date.now): FrameShare {
  let streams = 0;
  const share = () => perSecond / Math.max(1, streams);
  return {
    join() {
      streams++;
      let left = false;
      const budget = createFrameBudget(share, now);
      return {
        spend: budget.spend,
        leave() {
          if (left) return;
          left = true;
          streams--;
        },
      };
    },
  };
}
