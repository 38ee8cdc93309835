import { whole } from "./option-checks.ts";
import { defaultControlFramesPerSecond } from "./h2-control-budget.ts";
import { defaultOverheadBytesPerSecond } from "./h2-overhead-budget.ts";

/**
 * The client's limits on what a server's HTTP/2 connection may cost the host below the stream (options
 * `maxServerControlFramesPerSecond`, `maxServerOverheadBytesPerSecond`, documented on `ClientOptions`), checked,
 * with their defaults: throws a TypeError naming the option. @internal
 */
export function resolveH2Limits(o: { maxServerControlFramesPerSecond?: number; maxServerOverheadBytesPerSecond?: number }) {
  return {
    maxServerControlFramesPerSecond: whole(o.maxServerControlFramesPerSecond, "maxServerControlFramesPerSecond", defaultControlFramesPerSecond, 10, 1_000_000),
    maxServerOverheadBytesPerSecond: whole(o.maxServerOverheadBytesPerSecond, "maxServerOverheadBytesPerSecond", defaultOverheadBytesPerSecond, 1 << 16, 1 << 30),
  };
}
