/**
 * Peer requests are authenticated by an HMAC-SHA256, with the shared peer
 * secret, over what the request does: method, request target (the absolute
 * URI of a forwarded scrape, the path of a state request), the scrape timeout
 * header, a timestamp, a random nonce, the sender's replica id and the
 * receiver's (empty only on a state poll to a peer whose id is not known yet).
 * A receiver accepts a timestamp within the clock-skew window, each nonce once
 * within it, and only requests addressed to itself (forwarded scrapes always),
 * so a captured request cannot be replayed, here or at another replica (a
 * first, unaddressed state poll can: it only reads a state), and nobody without the secret
 * can ask for the state, pose as a peer or forge a forwarded scrape.
 *
 * The secret is a string or a file of secrets, one a line: the first signs,
 * every one verifies, so a secret rotates without a refused request (add the
 * new one second everywhere, then first, then drop the old one). A file is
 * re-read when it changed (a `stat` a poll).
 *
 * @internal
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { reloadingFile, type ReloadingFile } from "../../auth/reloading-file.ts";
import type { Logger } from "../../shared/logger.ts";

/** The header carrying a peer request's signature: `FROM;TIMESTAMP_MS;NONCE;HEX_HMAC` (FROM URI-encoded). */
export const peerAuthHeader = "x-promproxy-peer";
/** The nonce of a {@link peerAuthHeader} value this replica signed (its answer is signed over it). */
export const nonceOf = (signed: string) => signed.split(";")[2] ?? "";
/** Marks a scrape forwarded by a peer: answered from local state only, never forwarded again. Its value: the sender's id. */
export const forwardedHeader = "x-promproxy-forwarded";
/**
 * Set by a replica on its answer to a forwarded scrape for a client it does
 * not hold (any more): the replica that forwarded it asks the next holder.
 */
export const notHeldHeader = "x-promproxy-not-held";
/**
 * On a forwarded scrape: the address of the Prometheus that asked the forwarding replica, and an HMAC over it and
 * the request's nonce (`ADDRESS HEX_HMAC`), so that the holder judges its place by that address, not the peer's.
 */
export const forwardedForHeader = "x-promproxy-for";
/** Secrets shorter than this are refused: an HMAC key is only as strong as it is long. */
export const minSecretLength = 16;

/** A verified peer request: who sent it, and its nonce (the answer to a state request is signed over it). */
export interface PeerCaller {
  from: string;
  nonce: string;
}
/** The header signing the answer to a state request: HMAC over the request's nonce, the status, the ETag and the body. */
export const peerAnswerHeader = "x-promproxy-peer-answer";
/** A refused peer request: a status, a one-line message, and a short reason for the metrics. */
export interface PeerRefusal {
  status: 400 | 401 | 403 | 503;
  message: string;
  reason: string;
}

export interface PeerAuth {
  /**
   * The `x-promproxy-peer` header for a request to the replica `to` (its id; "" while unknown, only for a
   * first state poll): a request signed for one replica is refused by every other.
   */
  sign(method: string, target: string, timeoutHeader: string | undefined, to: string): string;
  /** Checks a request's signature (addressed to this replica, or to nobody when `unaddressed` is allowed), timestamp and nonce. */
  verify(method: string, target: string, headers: IncomingHttpHeaders, o?: { unaddressed?: boolean }): PeerCaller | PeerRefusal;
  /** Re-reads the secret file if it changed (call it now and then; cheap). */
  refresh(): Promise<void>;
  /** Signs the answer to a state request (so that no one at a peer's address can pose as that peer). */
  signAnswer(nonce: string, status: number, etag: string, body: string | { sha256: string }): string;
  /** Checks the answer to a state request this replica signed with `nonce`; the body, or its SHA-256 (hex) hashed as it arrived. */
  verifyAnswer(nonce: string, status: number, etag: string, body: string | { sha256: string }, header: unknown): boolean;
  /**
   * Signs the head of the answer to a forwarded scrape, over the request's nonce: only a holder of the secret can
   * answer one (its body streams, and is not signed).
   */
  signForwardAnswer(nonce: string): string;
  /** Checks the head of the answer to a forwarded scrape this replica signed with `nonce`. */
  verifyForwardAnswer(nonce: string, header: unknown): boolean;
  /** The {@link forwardedForHeader} of a forwarded scrape signed with `nonce`, for the asker's `address`. */
  signFor(nonce: string, address: string): string;
  /** The asker's address a verified forwarded scrape's {@link forwardedForHeader} names; undefined unless signed. */
  verifyFor(nonce: string, header: unknown): string | undefined;
}

/** Parses a secrets text: one secret a line, `#` comments and blank lines skipped; each at least 16 characters. */
export function parsePeerSecrets(text: string, where: string): Buffer[] {
  const out: Buffer[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.length < minSecretLength) throw new Error(`${where}:${i + 1}: a peer secret must be at least ${minSecretLength} characters (try: openssl rand -hex 32)`);
    out.push(Buffer.from(line, "utf8"));
  }
  if (out.length === 0) throw new Error(`${where}: no peer secret in it`);
  return out;
}

/** In place of a state answer's ETag (status 0, no body): a forwarded scrape's answer head. */
const forwardAnswerTag = "forwarded-scrape";
/** What a forwarded scrape's asker address is signed as (see {@link forwardedForHeader}). */
const forwardForTag = "forwarded-for";
const answerPayload = (nonce: string, status: number, etag: string, body: string | { sha256: string }) =>
  `promproxy-peer-answer-v1\n${nonce}\n${status}\n${etag}\n${typeof body === "string" ? createHash("sha256").update(body).digest("hex") : body.sha256}`;

function payload(method: string, target: string, timeoutHeader: string | undefined, ts: string, nonce: string, from: string, to: string): string {
  return `promproxy-peer-v2\n${method}\n${target}\n${timeoutHeader ?? ""}\n${ts}\n${nonce}\n${from}\n${to}`;
}

const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();

export function createPeerAuth(o: {
  secret: string | { file: string };
  replicaId: string;
  clockSkewMs: number;
  maxNonces: number;
  logger: Logger;
}): PeerAuth {
  const secret = o.secret;
  const file: ReloadingFile<Buffer[]> | undefined =
    typeof secret === "string"
      ? undefined
      : reloadingFile(secret.file, (t) => parsePeerSecrets(t, secret.file), (e) =>
          o.logger.error("peer secret file not reloaded: keeping the last good secret", { error: e.message }),
        );
  const fixed = typeof secret === "string" ? parsePeerSecrets(secret, "option peerSecret") : undefined;
  const secrets = () => fixed ?? file!.last;
  const from = encodeURIComponent(o.replicaId);
  // Nonces seen, each until its timestamp leaves the window; insertion order is roughly expiry order.
  const seen = new Map<string, number>();

  function refuse(status: PeerRefusal["status"], reason: string, message: string): PeerRefusal {
    return { status, reason, message: `peer request refused: ${message}` };
  }

  return {
    sign(method, target, timeoutHeader, to) {
      const ts = String(Date.now());
      const nonce = randomBytes(12).toString("hex");
      const sig = hmac(secrets()[0]!, payload(method, target, timeoutHeader, ts, nonce, from, encodeURIComponent(to))).toString("hex");
      return `${from};${ts};${nonce};${sig}`;
    },
    verify(method, target, headers, v = {}) {
      const h = headers[peerAuthHeader];
      if (h === undefined) return refuse(401, "no_signature", `no ${peerAuthHeader} header: peer requests are signed with the shared peer secret (--peer-secret-file)`);
      if (typeof h !== "string" || h.length > 600) return refuse(400, "malformed", `malformed ${peerAuthHeader} header`);
      const parts = h.split(";");
      const [who, ts, nonce, sig] = parts;
      if (parts.length !== 4 || !who || !/^\d{1,15}$/.test(ts!) || !/^[0-9a-f]{8,64}$/.test(nonce!) || !/^[0-9a-f]{64}$/.test(sig!)) {
        return refuse(400, "malformed", `malformed ${peerAuthHeader} header: want FROM;TIMESTAMP_MS;NONCE;HMAC`);
      }
      const timeout = headers["x-prometheus-scrape-timeout-seconds"];
      const texts = [o.replicaId, ...(v.unaddressed ? [""] : [])].map((to) =>
        payload(method, target, typeof timeout === "string" ? timeout : undefined, ts!, nonce!, who, encodeURIComponent(to)),
      );
      const given = Buffer.from(sig!, "hex");
      if (!secrets().some((k) => texts.some((text) => timingSafeEqual(hmac(k, text), given)))) {
        return refuse(403, "bad_signature", "bad signature (not signed with this replica's peer secret, or signed for another replica)");
      }
      const now = Date.now();
      const skew = Number(ts) - now;
      if (Math.abs(skew) > o.clockSkewMs) {
        return refuse(403, "stale", `timestamp ${(skew / 1000).toFixed(1)}s off this replica's clock, at most ${o.clockSkewMs / 1000}s allowed (an old or replayed request, or clocks apart)`);
      }
      for (const [n, until] of seen) {
        if (until >= now) break;
        seen.delete(n);
      }
      if (seen.has(nonce!)) return refuse(403, "replayed", "replayed (this nonce was seen already)");
      if (seen.size >= o.maxNonces) return refuse(503, "too_many", `more than ${o.maxNonces} peer requests within the clock-skew window; try again later`);
      seen.set(nonce!, Number(ts) + o.clockSkewMs);
      let caller: string;
      try {
        caller = decodeURIComponent(who!);
      } catch {
        caller = who!;
      }
      return { from: caller.slice(0, 128), nonce: nonce! };
    },
    signAnswer(nonce, status, etag, body) {
      return hmac(secrets()[0]!, answerPayload(nonce, status, etag, body)).toString("hex");
    },
    verifyAnswer(nonce, status, etag, body, header) {
      if (typeof header !== "string" || !/^[0-9a-f]{64}$/.test(header)) return false;
      const given = Buffer.from(header, "hex");
      const text = answerPayload(nonce, status, etag, body);
      return secrets().some((k) => timingSafeEqual(hmac(k, text), given));
    },
    signForwardAnswer(nonce) {
      return this.signAnswer(nonce, 0, forwardAnswerTag, "");
    },
    verifyForwardAnswer(nonce, header) {
      return this.verifyAnswer(nonce, 0, forwardAnswerTag, "", header);
    },
    signFor(nonce, address) {
      return `${address} ${this.signAnswer(nonce, 0, forwardForTag, address)}`;
    },
    verifyFor(nonce, header) {
      if (typeof header !== "string" || header.length > 200) return undefined;
      const [address = "", sig] = header.split(" ");
      return address && this.verifyAnswer(nonce, 0, forwardForTag, address, sig) ? address : undefined;
    },
    async refresh() {
      await file?.current();
    },
  };
}
