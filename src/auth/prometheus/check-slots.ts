/**
 * A cap on concurrent password checks: at most `max` run at once, at most
 * `maxQueued` more wait for a slot, and anything beyond is turned away at once
 * (the caller answers 503), so a flood can hold neither unbounded CPU nor
 * unbounded memory (scrypt at N=32768, r=8 takes 32 MiB per check).
 *
 * @internal
 */
export interface CheckSlots {
  /** Runs `fn` when a slot is free; undefined, without running it, when every slot and queue place is taken. */
  run<T>(fn: () => Promise<T>): Promise<T> | undefined;
  /** Checks running now. */
  readonly running: number;
  /** Checks waiting for a slot now. */
  readonly queued: number;
}

export function createCheckSlots(max: number, maxQueued: number): CheckSlots {
  let running = 0;
  const waiting: (() => void)[] = [];

  function release(): void {
    running--;
    const next = waiting.shift();
    if (next) {
      running++;
      next();
    }
  }

  return {
    run<T>(fn: () => Promise<T>): Promise<T> | undefined {
      const start = () => new Promise<T>((resolve) => resolve(fn())).finally(release);
      if (running < max) {
        running++;
        return start();
      }
      if (waiting.length >= maxQueued) return undefined;
      return new Promise<void>((resolve) => waiting.push(resolve)).then(start);
    },
    get running() {
      return running;
    },
    get queued() {
      return waiting.length;
    },
  };
}
