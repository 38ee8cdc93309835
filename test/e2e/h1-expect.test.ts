/**
 * Expect on the HTTP/1.1 side: 100-continue is honoured as Node does; any other
 * expectation gets 417 with a one-line `promproxy: ` body naming it (cut), not
 * Node's bare 417.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startClient, startServer } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";

const get = (expect: string) => `GET http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\nExpect: ${expect}\r\nConnection: close\r\n\r\n`;

test("an expectation other than 100-continue: 417 naming it in one line; 100-continue still scrapes", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const client = await startClient(s.url, "app-1");
  try {
    const refused = await rawHttp(s.port, get("200-ok"));
    assert.match(refused, /^HTTP\/1.1 417 /);
    assert.match(refused, /\r\n\r\npromproxy: unsupported expectation "200-ok": only 100-continue is supported\n$/);
    const long = await rawHttp(s.port, get(`x${"y".repeat(500)}`));
    assert.match(long, /\r\n\r\npromproxy: unsupported expectation "xy{63}\.\.\.": only 100-continue is supported\n$/);
    const cont = await rawHttp(s.port, get("100-Continue"));
    assert.match(cont, /^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    assert.match(cont, /test_up_total\{name="app-1"\} 1/);
    // 100-continue in a list: alone (repeated) it is 100-continue; beside another expectation, no 100 is sent
    // before the 417 (Node takes any value naming it for one and would send the 100 itself).
    const repeated = await rawHttp(s.port, get("100-continue, 100-continue"));
    assert.match(repeated, /^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    const mixed = await rawHttp(s.port, get("100-continue, foo"));
    assert.match(mixed, /^HTTP\/1.1 417 /, mixed.slice(0, 80));
    assert.match(mixed, /\r\n\r\npromproxy: unsupported expectation "100-continue, foo": only 100-continue is supported\n$/);
  } finally {
    await client.stop();
    await s.close();
  }
});
