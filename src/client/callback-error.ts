import { ConnectError } from "@connectrpc/connect";
import { escapedLine } from "../shared/escaped-line.ts";

/** The longest message of an error handed to the application (`onError`, `onDisconnected`, `ready()`). */
export const maxCallbackMessageChars = 1024;

/**
 * An error as the application sees it: what a server said reaches its
 * callbacks and `ready()` as one line of at most {@link maxCallbackMessageChars}
 * characters, control characters escaped (`\r`, `\n`, `\u001b`:
 * src/shared/escaped-line.ts), for an application may print it raw; our own
 * log lines carry it as a field of 512 (src/client/reason-field.ts). A hostile server's
 * 60 KB end-of-stream message used to reach `onDisconnected` whole (round 16a).
 * The code, metadata and details stay; a cause (the original error, for errors
 * said in our words) is bounded the same way. An error already within bounds is
 * handed over as it is.
 *
 * @internal
 */
export function forCallback(e: ConnectError, depth = 0): ConnectError {
  const message = escapedLine(e.rawMessage, maxCallbackMessageChars);
  const cause = boundedCause(e.cause, depth);
  if (message === e.rawMessage && cause === e.cause) return e;
  const bounded = new ConnectError(message, e.code, e.metadata, undefined, cause);
  bounded.details = e.details;
  return bounded;
}

function boundedCause(cause: unknown, depth: number): unknown {
  if (!(cause instanceof Error)) return cause;
  if (depth >= 2) return undefined; // a cause of a cause of a cause: not the application's business
  if (cause instanceof ConnectError) return forCallback(cause, depth + 1);
  const message = escapedLine(cause.message, maxCallbackMessageChars);
  if (message === cause.message) return cause;
  const bounded = new Error(message);
  bounded.name = cause.name;
  return bounded;
}
