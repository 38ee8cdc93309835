/**
 * Runs `make` (an error's constructor) with no stack trace captured, for errors made in bulk whose stack says nothing
 * (an abort reason made in a stream's close handler: the peer went away, not our code). Synchronous and restored at
 * once: nothing else runs while the limit is 0.
 *
 * @internal
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
