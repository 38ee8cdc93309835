/**
 * Which failed attempts stop the client, and which only one endpoint.
 *
 * - A refusal retrying cannot fix (`Unauthenticated`, `PermissionDenied`,
 *   `InvalidArgument`) is one a gRPC or Connect server sent as its status: a
 *   promproxy server refuses with HTTP 200 and `grpc-status` (gRPC), or with
 *   HTTP 200 and an end-of-stream error (Connect: a stream's errors never ride
 *   on the HTTP status). An answer with another HTTP status and no status of
 *   its own (the transports then say `HTTP 401`, coded from the HTTP status)
 *   comes from something else at that address (an auth proxy, a balancer, a
 *   stale DNS entry), whatever content type it claims (a 401 saying
 *   `application/grpc` without a `grpc-status` is no gRPC refusal either):
 *   it must not stop the client; it is `Unavailable` here, said as such, and
 *   retried.
 * - With several endpoints (server URLs, or addresses of one name), the
 *   client stops only when it was never welcomed and every endpoint's last
 *   attempt was refused so; an endpoint refusing while another has welcomed
 *   the client (or still may) is retried at the longest backoff step.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus } from "@connectrpc/connect/protocol-grpc";
import { oneLine } from "../shared/one-line.ts";

/** Refusals that retrying cannot fix. */
const fatalCodes = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument]);

/** Whether `error` is a refusal retrying cannot fix. */
export function isFatalRefusal(error: ConnectError): boolean {
  return fatalCodes.has(error.code);
}

/** What a non-gRPC answer of that status probably is, for the one-line reason. */
function guess(status: number): string {
  if (status === 401 || status === 403 || status === 407) return "an auth proxy? a wrong address?";
  if (status === 502 || status === 503 || status === 504) return "a proxy or balancer with no promproxy server behind it? a wrong address?";
  return "a wrong address or path?";
}

/**
 * The failure of an attempt through `url` (shown as `display`, "host:port" or
 * "host:port (address)"): an HTTP status without a status of its own (the transports' `HTTP
 * 401` and the like) as `Unavailable` with words, the original as its cause and
 * its metadata kept (a Retry-After there still sets the next wait); any other
 * error as it is.
 */
export function notPromproxy(error: ConnectError, url: URL, display: string): ConnectError {
  const m = /^HTTP (\d{3})$/.exec(error.rawMessage);
  if (!m) return error;
  const status = Number(m[1]);
  const type = error.metadata.get("content-type");
  if (error.code !== codeFromHttpStatus(status)) return error;
  const said = type === null ? "no content-type" : `content-type ${oneLine(type, 64)}`;
  const text = `${url.protocol}//${display} answered HTTP ${status} without a gRPC status (${said}): not a promproxy server (${guess(status)})`;
  return new ConnectError(text, Code.Unavailable, error.metadata, undefined, error);
}

/** The endpoints whose last attempt was a refusal retrying cannot fix (keys of src/client/endpoints.ts). */
export function createFatalRefusals() {
  const refused = new Set<string>();
  return {
    /** The last attempt through `key` ended so (`error` undefined: welcomed). */
    note(key: string, error: ConnectError | undefined) {
      if (error !== undefined && isFatalRefusal(error)) refused.add(key);
      else refused.delete(key);
    },
    /** Whether every one of `keys` (the endpoints now) refused so last. */
    everywhere(keys: string[]): boolean {
      return keys.length > 0 && keys.every((k) => refused.has(k));
    },
    /** Forgets the endpoints not among `keys` (gone from DNS): the set stays as small as the endpoints. */
    keepOnly(keys: Set<string>) {
      for (const k of refused) if (!keys.has(k)) refused.delete(k);
    },
  };
}
