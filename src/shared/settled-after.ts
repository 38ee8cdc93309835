/**
 * A promise that resolves once `stopped` has aborted and every promise of
 * `running` has settled, those started meanwhile included (the set changes
 * while it waits).
 */
export function settledAfter(stopped: AbortSignal, running: ReadonlySet<Promise<unknown>>): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
      resolve();
    };
    if (stopped.aborted) void done();
    else stopped.addEventListener("abort", () => void done(), { once: true });
  });
}
