import type { Interceptor } from "@connectrpc/connect";
import { token68 } from "../secrets.ts";

/**
 * A client interceptor that sends `authorization: Bearer TOKEN` on the stream.
 * Give the token, or a function returning it (sync or async): the function is
 * called for every connection attempt, so a rotated or refreshed token (a file
 * re-read, a new JWT) is picked up on the next reconnect. A function that
 * throws fails that attempt; the client retries with backoff.
 *
 * ```ts
 * createClient({ name: "app-1", serverUrl, interceptors: [bearerToken(process.env.PROMPROXY_TOKEN!)] });
 * ```
 */
export function bearerToken(token: string | (() => string | Promise<string>)): Interceptor {
  if (typeof token === "string") check(token);
  return (next) => async (req) => {
    const t = typeof token === "string" ? token : check((await token()).trim());
    req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
}

function check(token: string): string {
  if (!token68.test(token)) {
    throw new TypeError("promproxy: bearerToken: a token must be non-empty and hold only letters, digits and -._~+/ (then =)");
  }
  return token;
}
