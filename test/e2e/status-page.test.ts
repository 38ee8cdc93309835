/**
 * The status page at `/` (and `/status.json`): over plain HTTP (headers, HEAD,
 * escaping, bounds, Prometheus-side auth), then in a real headless Chromium
 * (Debian's, driven by playwright-core, no browser download) the way a person
 * sees it: clients, a vanished one, an error, a refresh without reload, a
 * hostile label shown as text, and a phone screen without sideways scrolling.
 * Screenshots go to the temp dir (printed as diagnostics).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import * as http from "node:http";
import * as net from "node:net";
import { bearerToken } from "../../src/auth/client/bearer-token.ts";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import { bearerAuth } from "../../src/server/index.ts";
import { statusJson, statusRows } from "../../src/server/status/status-json.ts";
import { statusPage } from "../../src/server/status/status-page.ts";
import type { ServerStatus } from "../../src/server/status/server-status.ts";
import { proxyGet, startClient, startServer, testRegistry, waitFor } from "../helpers.ts";
import { connectRaw, type RawClient } from "./raw-client.ts";

const chromiumPath = "/usr/bin/chromium";
const hostile = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
const inline = (html: string, tag: string) => [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => m[1] as string);

test("GET / and /status.json: a whole escaped page, strict CSP, no-store, HEAD; the 404 names them", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  let client: PromproxyClient | undefined;
  try {
    client = await startClient(s.url, "app-1", { labels: { env: "prod", evil: hostile } });
    assert.equal((await proxyGet(s.port, "http://nope/metrics")).status, 404);

    const res = await fetch(`${s.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    const html = await res.text();
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.ok(html.includes("app-1") && html.includes("nope") && html.includes("unknown_client"), "server-side render has clients and errors");
    assert.ok(html.includes("evil=&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;&lt;script&gt;"), "the hostile label is escaped");
    assert.ok(!html.includes("<img") && !html.includes("window.pwned=2</script>"), "no client markup reaches the page");
    assert.ok(!/\b(src|href)=/.test(html.replace(/src=x/g, "")), "nothing is loaded from anywhere");

    const csp = res.headers.get("content-security-policy") ?? "";
    const [script] = inline(html, "script");
    const [style] = inline(html, "style");
    assert.equal(inline(html, "script").length, 1, "one inline script");
    assert.ok(script !== undefined && style !== undefined);
    assert.ok(csp.includes("default-src 'none'"), csp);
    assert.ok(csp.includes(`script-src ${sha256(script)}`), "the script is allowed by its hash, and only it");
    assert.ok(csp.includes(`style-src ${sha256(style)}`), "the style is allowed by its hash, and only it");
    assert.ok(csp.includes("connect-src 'self'") && !/unsafe|https?:|\*/.test(csp), csp);

    const head = await fetch(`${s.url}/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-security-policy"), csp);
    assert.equal((await head.text()).length, 0);

    const json = await fetch(`${s.url}/status.json`);
    assert.equal(json.headers.get("content-type"), "application/json");
    assert.equal(json.headers.get("cache-control"), "no-store");
    const body = (await json.json()) as ReturnType<typeof statusJson>;
    assert.deepEqual(body.clients.map((c) => [c.name, c.labels["evil"]]), [["app-1", hostile]]);
    assert.equal(body.clientsTotal, 1);
    assert.equal(body.recentErrors[0]?.name, "nope");
    assert.equal(body.recentErrors[0]?.outcome, "unknown_client");
    assert.equal(body.replicaId, s.server.status().replicaId);
    assert.equal(body.limits.maxClients, 10_000);
    const jsonHead = await fetch(`${s.url}/status.json?x=1`, { method: "HEAD" });
    assert.equal(jsonHead.status, 200);
    assert.equal((await jsonHead.text()).length, 0);

    assert.equal((await fetch(`${s.url}/`, { method: "POST" })).status, 405);
    const missing = await fetch(`${s.url}/status`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /it serves \/ \(status page\), \/status\.json, \/clients, \/metrics, \/healthz and \/readyz/);
  } finally {
    await client?.stop();
    await s.close();
  }
});

test("the page and its JSON are bounded: 500 clients listed, the rest counted, long strings cut", () => {
  const now = new Date();
  const client = (i: number): ServerStatus["clients"][number] => ({
    name: `c-${String(i).padStart(4, "0")}`,
    labels: Object.fromEntries(Array.from({ length: 32 }, (_, j) => [`l${j}`, "v".repeat(1024)])),
    targets: Array.from({ length: 64 }, (_, j) => ({ port: 9000 + j, path: `/${"p".repeat(1000)}`, labels: {} })),
    sessionId: "s",
    version: "x".repeat(500),
    connectedAt: now,
    scrapesInFlight: 0,
    lastScrape: { name: `c-${i}`, outcome: "timeout", at: now, durationMs: 1, bytes: 0, message: "m".repeat(100_000) },
  });
  const status: ServerStatus = {
    replicaId: "r",
    version: "v",
    phase: "serving",
    ready: true,
    startedAt: now,
    scrapesInFlight: 0,
    limits: { maxClients: 1, maxScrapesInFlight: 1, maxScrapesWaiting: 1, maxResponseBytes: 1, maxChunkBytes: 1, creditBytes: 1, defaultScrapeTimeoutMs: 1, maxScrapeTimeoutMs: 1, heartbeatIntervalMs: 1, vanishedRetentionMs: 1 },
    clients: Array.from({ length: 700 }, (_, i) => client(i)),
    vanished: Array.from({ length: 600 }, (_, i) => ({ info: client(i), since: now.getTime(), reason: "r".repeat(10_000) })),
    recentErrors: Array.from({ length: 80 }, () => ({ name: "n", outcome: "timeout", at: now, durationMs: 1, bytes: 0, message: "e".repeat(100_000), count: 1e9, firstAt: now })),
    refused: Array.from({ length: 400 }, (_, i) => ({
      code: "PermissionDenied",
      why: "w",
      reason: "r".repeat(100_000),
      name: `n-${i}-${"x".repeat(10_000)}`,
      identity: "i".repeat(10_000),
      address: "a".repeat(10_000),
      count: i,
      firstAt: now,
      lastAt: now,
    })),
    refusedRoutine: 3,
  };
  const json = statusJson(status, now);
  assert.equal(json.clients.length, statusRows);
  assert.equal(json.clientsTotal, 700);
  assert.equal(json.vanished.length, statusRows);
  assert.equal(json.vanishedTotal, 600);
  assert.equal(json.recentErrors.length, 50);
  assert.equal(json.refused.length, 50);
  assert.equal(json.refusedTotal, 400);
  assert.ok(JSON.stringify(json.refused).length < 50 * 1_500, "refusals are cut");
  const first = json.clients[0];
  assert.equal(Object.keys(first?.labels ?? {}).length, 12);
  assert.equal(first?.labelsMore, 20);
  assert.equal(first?.targets.length, 8);
  assert.equal(first?.targetsMore, 56);
  const size = JSON.stringify(json).length;
  assert.ok(size < 6_000_000, `status.json at most a few MB even with hostile clients: ${size}`);
  const html = statusPage(json);
  assert.ok(html.length < 8_000_000, `page: ${html.length}`);
  assert.ok(html.includes("and 200 more clients not shown") && html.includes("and 100 more vanished clients not shown"));
});

test("Prometheus-side auth protects / and /status.json like /clients (401), proxying (407); /healthz stays open", { timeout: 30_000 }, async () => {
  const token = "status-page-token-1";
  const s = await startServer({ promAuth: { tokens: [token] } });
  try {
    for (const p of ["/", "/status.json", "/?x", "/clients"]) {
      const res = await fetch(`${s.url}${p}`);
      assert.equal(res.status, 401, p);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer realm="promproxy"/, p);
      assert.equal((await fetch(`${s.url}${p}`, { headers: { authorization: "Bearer wrong-token" } })).status, 403, p);
      assert.equal((await fetch(`${s.url}${p}`, { headers: { authorization: `Bearer ${token}` } })).status, 200, p);
    }
    assert.equal((await fetch(`${s.url}/`, { method: "HEAD" })).status, 401);
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 407);
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  } finally {
    await s.close();
  }
});

async function launch(): Promise<Browser> {
  assert.ok(fs.existsSync(chromiumPath), `${chromiumPath} is missing: run bash scripts/install-test-deps.sh (Debian's chromium)`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    timeout: 60_000,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
  });
}

/** Opens the page and records what must never happen: script errors, CSP violations, the hostile label running. */
async function open(browser: Browser, url: string, viewport: { width: number; height: number }, javaScriptEnabled = true) {
  const context = await browser.newContext({ viewport, javaScriptEnabled, deviceScaleFactor: viewport.width < 500 ? 2 : 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) problems.push(`console: ${m.text()}`);
  });
  // Runs before the page's own script (the browser's, not the page's: CSP does not apply to it).
  await page.addInitScript(`window.violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.violations.push(e.violatedDirective + " " + e.blockedURI));`);
  await page.goto(`${url}/`, { waitUntil: "load" });
  const verify = async () => {
    if (javaScriptEnabled) {
      const seen = await page.evaluate("({ violations: window.violations, pwned: window.pwned ?? 0 })");
      assert.deepEqual(seen, { violations: [], pwned: 0 }, "no CSP violation, the hostile label never ran");
    }
    assert.deepEqual(problems, [], "no script errors");
    assert.equal(await page.locator("main img, main script").count(), 0, "no client-made element in the page");
  };
  return { page, close: () => context.close(), verify };
}

const section = (page: Page, id: string) => page.locator(`section#${id}`);

test("in Chromium: clients, a vanished one, an error, refresh without reload, hostile text as text, fits a phone", { timeout: 120_000 }, async (t) => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  const clients: PromproxyClient[] = [];
  const raws: RawClient[] = [];
  let browser: Browser | undefined;
  try {
    clients.push(await startClient(s.url, "app-1", { labels: { env: "prod", team: "payments", region: "eu-west-1" } }));
    clients.push(await startClient(s.url, "billing-worker", { labels: { env: "staging", evil: hostile } }));
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200);
    assert.equal((await proxyGet(s.port, "http://billing-worker/metrics")).status, 200);
    const gone = await connectRaw(s.url, { name: "gone-1", labels: { env: "prod", owner: "laptop-42" }, version: hostile });
    gone.abort();
    await gone.ended;
    await waitFor("gone-1 vanished", async () => s.server.status().vanished.length === 1);
    assert.equal((await proxyGet(s.port, "http://gone-1/metrics")).status, 503);
    assert.equal((await proxyGet(s.port, "http://nope/metrics")).status, 404);
    // A refused hello whose name is markup: listed under "refused recently", as text.
    assert.equal(((await connectRaw(s.url, { name: hostile }).catch((e: unknown) => e)) as { code?: number }).code, 3);

    browser = await launch();
    const desktop = await open(browser, s.url, { width: 1280, height: 900 });
    const { page } = desktop;
    await assertShows(page);

    // A client connecting after the page loaded appears without a reload.
    raws.push(await connectRaw(s.url, { name: "late-1", labels: { env: "dev" } }));
    await section(page, "clients").getByText("late-1", { exact: true }).waitFor({ timeout: 30_000 });
    assert.match((await page.locator("#live").textContent()) ?? "", /^Live: refreshes every 5 s\.$/);
    await assertShows(page);
    await desktop.verify();
    const desktopShot = path.join(os.tmpdir(), "promproxy-status-desktop.png");
    await page.screenshot({ path: desktopShot, fullPage: true });
    t.diagnostic(`desktop screenshot: ${desktopShot}`);
    await desktop.close();

    // A phone: nothing wider than the screen.
    const phone = await open(browser, s.url, { width: 390, height: 844 });
    await assertShows(phone.page);
    const widths = (await phone.page.evaluate("({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth })")) as { scroll: number; inner: number };
    assert.ok(widths.scroll <= widths.inner, `no horizontal overflow at 390 px: ${JSON.stringify(widths)}`);
    const phoneShot = path.join(os.tmpdir(), "promproxy-status-phone.png");
    await phone.page.screenshot({ path: phoneShot, fullPage: true });
    t.diagnostic(`phone screenshot: ${phoneShot}`);
    await phone.verify();
    await phone.close();

    // Without JavaScript the first load shows everything already.
    const plain = await open(browser, s.url, { width: 1024, height: 768 }, false);
    await assertShows(plain.page);
    assert.match((await plain.page.locator("#live").textContent()) ?? "", /reload/);
    await plain.verify();
    await plain.close();
  } finally {
    await browser?.close();
    for (const r of raws) r.abort();
    await Promise.all(clients.map((c) => c.stop()));
    await s.close();
  }
});

/** What a person must see on the page, whoever drew it (the server or the script). */
async function assertShows(page: Page) {
  const clients = section(page, "clients");
  for (const name of ["app-1", "billing-worker"]) await clients.getByText(name, { exact: true }).waitFor();
  await clients.getByText("team=payments").waitFor();
  await clients.getByText(`evil=${hostile}`).waitFor();
  const row = clients.locator("tr", { hasText: "app-1" });
  assert.match((await row.textContent()) ?? "", /success/, "the last scrape's outcome");
  assert.match((await row.textContent()) ?? "", /\d+\sms · \d+(\.\d)?\s(B|KiB)/, "its duration and size");
  assert.match((await row.textContent()) ?? "", /127\.0\.0\.1/, "the address");
  const vanished = section(page, "vanished").locator("tr.vanished", { hasText: "gone-1" });
  await vanished.waitFor();
  assert.match((await vanished.textContent()) ?? "", /vanished\s*\d+s ago/);
  assert.match((await vanished.textContent()) ?? "", /without a goodbye/, "why it vanished, in words");
  assert.doesNotMatch((await page.locator("main").textContent()) ?? "", /Premature close/);
  assert.equal(await section(page, "clients").getByText("gone-1", { exact: true }).count(), 0, "a vanished client is not listed as connected");
  const refused = section(page, "refused").locator("tr.refused", { hasText: "InvalidArgument" });
  await refused.getByText(hostile, { exact: true }).waitFor();
  assert.match((await refused.textContent()) ?? "", /its hello was invalid/);
  const errors = section(page, "errors");
  await errors.locator("tr", { hasText: "nope" }).getByText("unknown_client").waitFor();
  await errors.getByText('no client "nope" connected').waitFor();
  assert.match((await page.locator("header").textContent()) ?? "", /serving.*ready.*version promproxy-node\//s);
  await section(page, "limits").getByText("maxScrapesInFlight").waitFor();
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

test("in Chromium: refused clients (wrong token, name not allowed, duplicate), status per target, grouped errors; desktop and phone", { timeout: 120_000 }, async (t) => {
  const s = await startServer({ interceptors: [bearerAuth({ tokens: { "token-apps": { name: "apps", patterns: ["app-*", "fwd-*"] } } })] });
  const exporter = http.createServer((_req, res) => res.end("exporter_up 1\n"));
  await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
  const exporterPort = (exporter.address() as net.AddressInfo).port;
  const dead = await deadPort();
  const clients: PromproxyClient[] = [];
  let browser: Browser | undefined;
  const token = (tk: string) => ({ interceptors: [bearerToken(tk)] });
  try {
    clients.push(await startClient(s.url, "app-1", token("token-apps")));
    clients.push(
      await startClient(s.url, "fwd-1", { ...token("token-apps"), targets: [`9100=http://127.0.0.1:${exporterPort}/metrics`, `9200=http://127.0.0.1:${dead}/metrics`] }),
    );
    // One good and one dead target: both stay visible, each with its own status.
    for (let i = 0; i < 3; i++) assert.equal((await proxyGet(s.port, "http://fwd-1:9100/metrics")).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await proxyGet(s.port, "http://fwd-1:9200/metrics")).status, 502);
    assert.equal((await proxyGet(s.port, "http://fwd-1:9100/metrics")).status, 200);

    // Refused: a wrong token (twice), a name the token may not hold, and the same name from another address.
    for (let i = 0; i < 2; i++) {
      const wrong = createClient({ name: "app-7", serverUrl: s.url, registry: testRegistry(), logger: silentLogger, ...token("wrong-token") });
      await assert.rejects(wrong.start({ timeoutMs: 10_000 }));
      await wrong.stop();
    }
    const denied = createClient({ name: "db-1", serverUrl: s.url, registry: testRegistry(), logger: silentLogger, ...token("token-apps") });
    await assert.rejects(denied.start({ timeoutMs: 10_000 }));
    await denied.stop();
    const twin = createClient({
      name: "app-1",
      serverUrl: s.url,
      registry: testRegistry(),
      logger: silentLogger,
      backoff: { initialMs: 20, maxMs: 50 },
      http2Options: { localAddress: "127.0.0.2" } as object,
      ...token("token-apps"),
    });
    twin.start().catch(() => {});
    await waitFor("the twin refused a few times", () => (s.server.status().refused.find((r) => r.code === "AlreadyExists")?.count ?? 0) >= 3, 20_000);
    await twin.stop();

    const st = s.server.status();
    assert.deepEqual(
      st.refused.map((r) => [r.code, r.name, r.identity, r.address]).sort(),
      [
        ["AlreadyExists", "app-1", "apps", "127.0.0.2"],
        ["PermissionDenied", "db-1", "apps", "127.0.0.1"],
        ["Unauthenticated", undefined, undefined, "127.0.0.1"],
      ].sort(),
    );
    assert.equal(st.refused.find((r) => r.code === "Unauthenticated")?.count, 2, "the same refusal twice is one entry, counted");
    assert.equal(st.refused.find((r) => r.code === "PermissionDenied")?.count, 1, "each refusal counted once");
    const fwd = st.clients.find((c) => c.name === "fwd-1");
    assert.deepEqual(fwd?.targetScrapes?.map((e) => [e.port, e.outcome]), [[9100, "success"], [9200, "target_unreachable"]]);
    const grouped = st.recentErrors.filter((e) => e.name === "fwd-1");
    assert.equal(grouped.length, 1, "five identical failures are one group");
    assert.equal(grouped[0]?.count, 5);

    browser = await launch();
    for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
      const view = await open(browser, s.url, viewport);
      const { page } = view;
      const refused = section(page, "refused");
      const row = (text: string) => refused.locator("tr.refused", { hasText: text });
      await row("Unauthenticated").waitFor();
      assert.match((await row("Unauthenticated").textContent()) ?? "", /2×.*name unknown.*refused before its hello.*127\.0\.0\.1.*no valid credentials/s);
      assert.match((await row("PermissionDenied").textContent()) ?? "", /db-1.*identity apps.*may not use this name/s);
      assert.match((await row("AlreadyExists").textContent()) ?? "", /\d+×.*app-1.*identity apps.*127\.0\.0\.2.*held by another connected client/s);
      const fwdRow = section(page, "clients").locator("tr.client", { hasText: "fwd-1" });
      assert.match((await fwdRow.textContent()) ?? "", /fwd-1:9100\s*success.*fwd-1:9200\s*target_unreachable/s, "each target its own status");
      const errors = section(page, "errors").locator("tr.error", { hasText: "fwd-1:9200" });
      assert.equal(await errors.count(), 1);
      assert.match((await errors.textContent()) ?? "", /5×.*since.*target_unreachable/s);
      if (viewport.width < 500) {
        const widths = (await page.evaluate("({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth })")) as { scroll: number; inner: number };
        assert.ok(widths.scroll <= widths.inner, `no horizontal overflow at 390 px: ${JSON.stringify(widths)}`);
      }
      const shot = path.join(os.tmpdir(), `promproxy-status-refused-${viewport.width}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);
      await view.verify();
      await view.close();
    }
  } finally {
    await browser?.close();
    await Promise.all(clients.map((c) => c.stop()));
    await s.close();
    await new Promise((r) => exporter.close(r));
  }
});
