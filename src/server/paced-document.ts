/**
 * A large document that changes often (`/clients`, a replica's peer state) is
 * rebuilt at most once per 1 ms for every {@link pacedBytesPerMs} bytes of its
 * last build, and served as last built in between. Joining, encoding and
 * parsing such a document cost about its size in time (now it is kept as
 * pieces and only peers parse it, src/server/listen/pieced-body.ts): a 58 MB
 * `/clients` churned every 200 ms and asked for every 300 ms kept a server at 50-100 % of
 * a core, its scrapes at 3-4 s (an outside review). Paced, a document of 58 MB
 * is at most 5.8 s old and costs a few % of a core; one of 10 KB or less is
 * rebuilt on every change, as before (at most 1 ms old).
 *
 * @internal
 */
export const pacedBytesPerMs = 10_000;

/** `build()` at most once per `bytes(last) / pacedBytesPerMs` ms; the last value in between. */
export function pacedDocument<T>(build: () => T, bytes: (value: T) => number, now: () => number = () => performance.now()): () => T {
  let last: { value: T; at: number } | undefined;
  return () => {
    const t = now();
    if (last && t - last.at < bytes(last.value) / pacedBytesPerMs) return last.value;
    last = { value: build(), at: t };
    return last.value;
  };
}
