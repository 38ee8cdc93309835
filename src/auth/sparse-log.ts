/**
 * A log line written at most once per `everyMs` (a flood of refusals must not
 * flood the log too), with how many were left out since the last one.
 *
 * @internal
 */
export function sparseLog(
  log: (message: string, fields: Record<string, unknown>) => void,
  message: string,
  everyMs = 10_000,
): (fields: Record<string, unknown>) => void {
  let last = -Infinity;
  let skipped = 0;
  return (fields) => {
    const now = performance.now();
    if (now - last < everyMs) {
      skipped++;
      return;
    }
    log(message, skipped ? { ...fields, notLogged: skipped } : fields);
    last = now;
    skipped = 0;
  };
}
