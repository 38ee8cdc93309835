/** The longest delay a Node timer takes: longer ones fire after 1 ms (with a TimeoutOverflowWarning). */
export const maxTimerMs = 2 ** 31 - 1;

/** Resolves after `ms` (at most `maxTimerMs`, never the 1 ms of an overflowed timer), or at once when `signal` aborts (never rejects). @internal */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, Math.min(maxTimerMs, Math.max(0, ms || 0)));
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
