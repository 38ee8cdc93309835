/**
 * One state poll on the wire: the signed `GET /_promproxy/peer/state` (with
 * the ETag last seen), bounded by `timeoutMs` until its head, then by as long
 * again plus 1 ms per {@link stateBytesPerMs} bytes it declares (a state of
 * tens of MB takes seconds on a busy pair: a fixed 2 s failed every poll of a
 * 58 MB state, for good), and the body by `maxStateBytes`, and the check that whoever answered knows the peer secret
 * (the answer is signed over this request's nonce). A 200 without a
 * well-formed answer signature is cut off before its body; the body is
 * hashed as it arrives and joined only once its signature checked out. What
 * the state says is the poller's business.
 *
 * @internal
 */
import { createHash } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import { nonceOf, peerAnswerHeader, peerAuthHeader, type PeerAuth } from "./peer-auth.ts";
import type { PeerAddress } from "./peer-list.ts";
import { peerStatePath } from "./peer-state.ts";

/** How a state poll ended: unchanged (304), a new state (its text and ETag), or failed (`unsigned`: someone without the secret answered). */
export type Fetched = { unchanged: true } | { unchanged: false; text: string; etag?: string } | { error: string; unsigned?: boolean };

export const unsignedAnswer = "its answer is not signed with the peer secret";

/** The slowest a state's body may arrive: 4 MB a second (a 64 MiB state: 17 s on top of `timeoutMs`). */
export const stateBytesPerMs = 4_000;

export interface FetchOptions {
  address: PeerAddress;
  auth: PeerAuth;
  /** The id the request is addressed to ("" for nobody: a first poll, or one after a failure). */
  to: string;
  /** The ETag last seen, sent as If-None-Match. */
  etag?: string;
  timeoutMs: number;
  maxStateBytes: number;
  agents: { http: http.Agent; https: https.Agent };
  /** Told, when a new state's head arrives, until when (Date.now()) its body may take. */
  onBody?: (untilMs: number) => void;
}

/** Starts a poll; `done` hears how it ended, once (never after `destroy()`). */
export function fetchState(o: FetchOptions, done: (r: Fetched) => void): { destroy(): void } {
  const u = new URL(peerStatePath, o.address.url);
  const mod = u.protocol === "https:" ? https : http;
  const signed = o.auth.sign("GET", peerStatePath, undefined, o.to);
  const nonce = nonceOf(signed);
  let over = false;
  const finish = (r: Fetched) => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    done(r);
  };
  const fail = (error: string) => finish({ error });
  const req = mod.request(u, {
    method: "GET",
    agent: u.protocol === "https:" ? o.agents.https : o.agents.http,
    servername: o.address.servername,
    headers: { [peerAuthHeader]: signed, ...(o.etag ? { "if-none-match": o.etag } : {}) },
  });
  let res0: http.IncomingMessage | undefined;
  const signedAnswer = (status: number, body: string | { sha256: string }) => o.auth.verifyAnswer(nonce, status, String(res0?.headers["etag"] ?? ""), body, res0?.headers[peerAnswerHeader]);
  const giveUp = (why: string, ms: number) =>
    setTimeout(() => {
      req.destroy();
      fail(why);
    }, ms);
  let timer = giveUp(`no answer within ${o.timeoutMs / 1000}s`, o.timeoutMs);
  req.on("error", (e) => fail(e.message));
  req.on("response", (res) => {
    res0 = res;
    if (res.statusCode === 304) {
      res.resume();
      return finish(signedAnswer(304, "") ? { unchanged: true } : { error: unsignedAnswer, unsigned: true });
    }
    if (res.statusCode === 200 && !/^[0-9a-f]{64}$/.test(String(res.headers[peerAnswerHeader] ?? ""))) {
      req.destroy();
      return finish({ error: unsignedAnswer, unsigned: true });
    }
    const declared = Number(res.headers["content-length"] ?? 0);
    if (declared > o.maxStateBytes) {
      req.destroy();
      return fail(`its state is ${declared} bytes, more than maxPeerStateBytes (${o.maxStateBytes})`);
    }
    const bodyMs = o.timeoutMs + Math.ceil(declared / stateBytesPerMs);
    clearTimeout(timer);
    timer = giveUp(`its state (${declared} bytes) did not arrive within ${bodyMs / 1000}s`, bodyMs);
    o.onBody?.(Date.now() + bodyMs);
    const chunks: Buffer[] = [];
    const hash = createHash("sha256");
    let bytes = 0;
    res.on("data", (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      if (bytes > o.maxStateBytes) {
        req.destroy();
        return fail(`its state passed maxPeerStateBytes (${o.maxStateBytes})`);
      }
      chunks.push(c);
    });
    res.on("error", (e) => fail(e.message));
    res.on("end", () => {
      if (over) return;
      if (res.statusCode !== 200) return fail(`status ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").split("\n")[0]?.slice(0, 200)}`);
      if (!signedAnswer(200, { sha256: hash.digest("hex") })) return finish({ error: unsignedAnswer, unsigned: true });
      const text = Buffer.concat(chunks).toString("utf8");
      const etag = res.headers["etag"];
      finish({ unchanged: false, text, ...(typeof etag === "string" && etag.length <= 100 ? { etag } : {}) });
    });
  });
  req.end();
  return {
    destroy() {
      over = true;
      clearTimeout(timer);
      req.destroy();
    },
  };
}
