/**
 * What a client's result head may say. Nothing a client sends reaches
 * Prometheus unchecked: only final statuses, only the headers that describe
 * the body, only values that cannot break the HTTP framing, and a
 * Content-Length the server then holds the body to (none on a 204 or 304,
 * which have no body).
 *
 * @internal
 */
import type { Header } from "../../gen/promproxy/v1/scrape_pb.ts";

/** A head fit to relay. */
export interface CheckedHead {
  status: number;
  /** Lower-case names, checked values, in the client's order. */
  headers: [name: string, value: string][];
  /** The body length the client declared, which the server then enforces. */
  contentLength?: number;
}

/** Response headers relayed from a result head, each with its bit (to find one given twice); any other is dropped. */
const relayed = new Map([["content-type", 1], ["content-encoding", 2], ["content-length", 4]]);
/** Visible ASCII and inner spaces: no control characters (CR, LF, NUL), nothing a parser could split on. */
const safeValue = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
const maxValueLength = 1024;

/** Whether a response with this status has no body (RFC 9110 §6.4.1): its client may send none. */
export function bodiless(status: number): boolean {
  return status === 204 || status === 304;
}

/** Checks a result head; returns it fit to relay, or a one-line reason it is not. */
export function checkHead(status: number, headers: Header[]): CheckedHead | { error: string } {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    return { error: `HTTP status ${status}, but only final statuses 200-599 can be relayed` };
  }
  const out: CheckedHead = { status, headers: [] };
  let seen = 0;
  for (const h of headers) {
    const name = h.name.toLowerCase();
    const bit = relayed.get(name);
    if (bit === undefined) continue;
    if (seen & bit) return { error: `the header ${name} twice` };
    seen |= bit;
    if (h.value.length > maxValueLength || !safeValue.test(h.value)) {
      return { error: `an invalid ${name} header ${JSON.stringify(h.value.slice(0, 64))}` };
    }
    if (name === "content-length") {
      if (!/^\d{1,15}$/.test(h.value)) return { error: `an invalid content-length ${JSON.stringify(h.value.slice(0, 64))}` };
      if (bodiless(status)) continue; // RFC 9110 §8.6: never on a 204; on a 304 it would describe a body that is not there
      out.contentLength = Number(h.value);
    }
    out.headers.push([name, h.value]);
  }
  return out;
}
