import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../../shared/logger.ts";
import { peerKey } from "./peer.ts";

/**
 * The server's outermost interceptor: logs client streams that an auth
 * interceptor refused (code, reason and remote address; never a credential:
 * refusal messages name none) and counts them.
 *
 * @internal
 */
export function logRefusals(logger: Logger, count: (code: Code, reason: string, remote?: string) => void): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      const err = ConnectError.from(e);
      const remote = req.contextValues.get(peerKey)?.remoteAddress;
      count(err.code, err.rawMessage, remote);
      logger.warn("client refused", { code: Code[err.code], reason: err.rawMessage, remote });
      throw err;
    }
  };
}
