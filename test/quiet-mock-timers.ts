/**
 * Imported by tests that use node:test's mock timers: they are still
 * "experimental" in Node 22, and that one notice is dropped; every other
 * warning shows.
 */
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (rest[0] === "ExperimentalWarning" && String(warning).includes("MockTimers")) return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
