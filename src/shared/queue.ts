/**
 * An unbounded single-consumer async queue: producers push synchronously, one
 * consumer drains it with `for await`. Closing with an error makes the consumer
 * throw it once the queue is empty; closing without one ends the iteration.
 *
 * It backs the server's side of the Scrape stream. It is unbounded on purpose:
 * what goes into it is bounded elsewhere (orders by the in-flight limit, and an
 * order withdrawn when its scrape is abandoned before it left; credit by what
 * Prometheus reads, pings by the heartbeat interval and one takeover probe at a
 * time; a client that leaves 1,024 frames unread, or takes none of them for a
 * heartbeat timeout, is closed). The client, which trusts no server, uses its
 * own bounded queue (src/client/out-queue.ts).
 *
 * @internal
 */
import { withGetters } from "./with-getters.ts";

export interface Queue<T> extends AsyncIterable<T> {
  /** Adds an item; ignored once the queue is closed. Returns false then. */
  push(item: T): boolean;
  /** Ends the queue; pending items are still delivered before the end or error. */
  close(error?: unknown): void;
  readonly closed: boolean;
  /** Items pushed and not yet taken. */
  readonly size: number;
  /** Takes the next item at once, or undefined when none waits: for a consumer that drains in batches. */
  shift(): T | undefined;
  /**
   * Takes `item` back if it is still waiting (compared by identity; searched from the newest, which is where a
   * just-pushed item is): true when it was taken back and will never be delivered.
   */
  withdraw(item: T): boolean;
  /** Calls `cb` once at the next push or close (one waiter: it takes the slot the async iterator waits in). */
  onReady(cb: () => void): void;
  /** What the queue was closed with, if it was closed with an error. */
  readonly error: unknown;
  /** Since when items have waited with none taken (ms timestamp); undefined while none waits. */
  readonly waitingSince: number | undefined;
}

export function createQueue<T>(): Queue<T> {
  let items: T[] = [];
  let head = 0;
  let closed = false;
  let failure: unknown = undefined;
  let failed = false;
  let wake: (() => void) | undefined;
  let waitingSince: number | undefined;
  /** An item was taken: the clock restarts for what still waits. */
  const taken = () => (waitingSince = head < items.length ? Date.now() : undefined);

  function notify() {
    const w = wake;
    wake = undefined;
    w?.();
  }

  // A fast object (with-getters.ts): a server holds one queue per connected client.
  const queue: Omit<Queue<T>, "closed" | "size" | "error" | "waitingSince"> = {
    push(item) {
      if (closed) return false;
      if (head === items.length) waitingSince = Date.now();
      items.push(item);
      notify();
      return true;
    },
    close(error?: unknown) {
      if (closed) return;
      closed = true;
      if (error !== undefined) {
        failed = true;
        failure = error;
      }
      notify();
    },
    shift() {
      if (head >= items.length) return undefined;
      const item = items[head] as T;
      items[head++] = undefined as T;
      if (head === items.length) {
        items = [];
        head = 0;
      }
      taken();
      return item;
    },
    withdraw(item) {
      for (let i = items.length - 1; i >= head; i--) {
        if (items[i] !== item) continue;
        items.splice(i, 1);
        if (head === items.length) {
          items = [];
          head = 0;
          waitingSince = undefined;
        }
        return true;
      }
      return false;
    },
    onReady(cb) {
      wake = cb;
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (head < items.length) {
          const item = items[head] as T;
          items[head++] = undefined as T;
          if (head > 1024 && head * 2 > items.length) {
            items = items.slice(head);
            head = 0;
          }
          taken();
          yield item;
          continue;
        }
        if (closed) {
          if (failed) throw failure;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
  return withGetters(queue, { closed: () => closed, size: () => items.length - head, error: () => failure as unknown, waitingSince: () => waitingSince });
}
