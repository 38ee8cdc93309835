/** Which placed scrape yields its place to an asker (src/server/stalled-places.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ScrapeRequest } from "../src/server/coordinator.ts";
import { pickStalled } from "../src/server/stalled-places.ts";

/** The server option stalledAnswerMs, at its default. */
const stalledPlaceMs = 5_000;

const req = (remote: string, port = 9100): ScrapeRequest => ({ name: "app", method: "GET", port, path: "/metrics", scheme: "http", headers: [], timeoutMs: 10_000, remote });
const placed = (remote: string, stalled: number, port = 9100) => ({ r: req(remote, port), stalledMs: () => stalled });

test("only an answer stalled stalledPlaceMs or longer yields, and only to an address holding fewer places", () => {
  const hogs = [placed("10.0.0.1", stalledPlaceMs - 1), placed("10.0.0.1", stalledPlaceMs), placed("10.0.0.1", stalledPlaceMs + 5)];
  assert.equal(pickStalled(hogs, req("10.0.0.2"), false, stalledPlaceMs), hogs[2], "the longest stalled of the address holding the most");
  assert.equal(pickStalled(hogs, req("10.0.0.1"), false, stalledPlaceMs), undefined, "one address never takes its own places");
  assert.equal(pickStalled([placed("10.0.0.1", stalledPlaceMs - 1)], req("10.0.0.2"), false, stalledPlaceMs), undefined, "not stalled long enough");
  // Equal holdings: nobody yields (two parties with one place each do not take turns cutting each other).
  assert.equal(pickStalled([placed("10.0.0.1", 1e9), placed("10.0.0.2", 0)], req("10.0.0.2"), false, stalledPlaceMs), undefined);
});

test("for the client's own busy, only the same target's answer yields; IPv6 addresses count by /64", () => {
  const other = [placed("10.0.0.1", 1e9, 9101), placed("10.0.0.1", 1e9, 9101)];
  assert.equal(pickStalled(other, req("10.0.0.2"), true, stalledPlaceMs), undefined);
  assert.equal(pickStalled(other, req("10.0.0.2"), false, stalledPlaceMs), other[0]);
  const v6 = [placed("2001:db8::1", 1e9), placed("2001:db8::2", 1e9)];
  assert.equal(pickStalled(v6, req("2001:db8::3"), false, stalledPlaceMs), undefined, "the same /64 is one source");
  assert.equal(pickStalled(v6, req("2001:db8:1::3"), false, stalledPlaceMs), v6[0]);
});
