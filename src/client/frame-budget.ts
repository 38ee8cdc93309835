/**
 * How fast the client reads its server's frames (option `maxServerFramesPerSecond`): a bucket of frames that
 * fills at `perSecond` and holds at most one second's worth. Every frame read takes one; a read that overdraws
 * it says how long to stop reading, and the stream's reader pauses that long. HTTP/2 flow control then holds the
 * server back: its frames wait in its own buffers, not in the host's. A server that orders, cancels, pings or
 * grants credit faster than this costs the host a bounded share of a core, whatever it sends; a server keeping
 * to the protocol (an order per scrape, a credit per half megabyte or so of body, a ping per heartbeat) never
 * comes near it.
 *
 * @internal
 */
export interface FrameBudget {
  /**
   * Takes `frames` from the bucket; returns 0 while the bucket holds enough, otherwise the milliseconds until it
   * is out of debt again: read nothing more until then.
   */
  spend(frames: number): number;
}

export function createFrameBudget(perSecond: number, now: () => number = Date.now): FrameBudget {
  const perMs = perSecond / 1000;
  let tokens = perSecond;
  let at = now();
  return {
    spend(frames) {
      const t = now();
      tokens = Math.min(perSecond, tokens + (t - at) * perMs) - frames;
      at = t;
      return tokens >= 0 ? 0 : Math.ceil(-tokens / perMs);
    },
  };
}
