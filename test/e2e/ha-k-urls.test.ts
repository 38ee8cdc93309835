/**
 * K of N for clients given every replica's address (a list of URLs, as a DNS
 * name with every replica's address gives them): real `promproxy server`
 * replicas (`--peers`, `--replicas-per-client K`), embedded clients holding
 * one slot per address. A replica refuses the hello of a client it is not
 * assigned; the slot bound to it waits for the replica set to change instead
 * of redialling on its backoff (src/client/unassigned-wait.ts). Checks:
 *
 * - once each client is held by its K assigned replicas, refused attempts
 *   are counted: at most a few per client and replica not assigned until
 *   then, and over a window after it about none (a slot redialling on its
 *   backoff makes dozens);
 * - after a kill -9 of one replica, the clients it held take their new
 *   replica of the set left (the figure is printed; the bound asserted is
 *   wide, as timing on a loaded machine must be).
 *
 *   PROMPROXY_HA_K_URLS=4,2,8,20 npx node --test test/e2e/ha-k-urls.test.ts   (N, K, clients, window s)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createClient, type PromproxyClient } from "../../src/client/index.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { assignedReplicas } from "../../src/shared/rendezvous.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { freePorts, ready, startReplica, stopReplica, type Replica } from "./fixtures/ha/cluster.ts";

const [n, k, clientCount, windowS] = (process.env["PROMPROXY_HA_K_URLS"] ?? "4,2,8,20").split(",").map(Number) as [number, number, number, number];
const names = Array.from({ length: clientCount }, (_, i) => `urls-app-${i}`);
const since = (t: number) => Math.round((performance.now() - t) / 100) / 10;

/** Refusals "this replica does not serve you" each client met, by replica id. */
const refusals = new Map<string, Map<string, number>>(names.map((name) => [name, new Map()]));
const refusedTotal = () => [...refusals.values()].reduce((sum, m) => sum + [...m.values()].reduce((a, b) => a + b, 0), 0);

function countingLogger(name: string): Logger {
  const noop = () => {};
  return {
    debug(message, fields) {
      if (!message.startsWith("landed on a replica that does not serve this client")) return;
      const by = String(fields?.["replica"] ?? "");
      const m = refusals.get(name)!;
      m.set(by, (m.get(by) ?? 0) + 1);
    },
    info: noop,
    warn: noop,
    error: noop,
  };
}

/** The clients a replica holds, from its /status.json. */
async function heldBy(r: Replica): Promise<string[]> {
  const s = (await (await fetch(`${r.url}/status.json`, { signal: AbortSignal.timeout(5_000) })).json()) as { clients: { name: string }[] };
  return s.clients.map((c) => c.name);
}

/** Clients not held by exactly their K assigned replicas of `live`. */
async function misplaced(live: Replica[]): Promise<string[]> {
  const held = await Promise.all(live.map((r) => heldBy(r)));
  const ids = live.map((r) => r.id);
  return names.filter((name) => {
    const h = live.filter((_, i) => held[i]!.includes(name)).map((r) => r.id).sort();
    return h.join() !== assignedReplicas(name, ids, k).sort().join();
  });
}

describe(`K of N through a list of URLs: ${n} replicas, --replicas-per-client ${k}, ${clientCount} clients`, { timeout: 240_000 }, () => {
  const replicas: Replica[] = [];
  const clients: PromproxyClient[] = [];
  const figures: string[] = [];
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-ha-k-urls-"));
    fs.writeFileSync(path.join(dir, "peer-secret"), `${randomBytes(32).toString("hex")}\n`);
    const ports = await freePorts(n);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const flags = [`--peers=${urls.join(",")}`, `--peer-secret-file=${path.join(dir, "peer-secret")}`, `--replicas-per-client=${k}`, "--drain-delay=0s", "--shutdown-grace=2s", "--vanished-retention=0s"];
    replicas.push(...(await Promise.all(ports.map((port, i) => startReplica(`r${i + 1}`, port, flags)))));
    await waitFor("every replica ready", async () => (await Promise.all(replicas.map((r) => ready(r.url)))).every(Boolean), 30_000, 100);
    for (const name of names) {
      const c = createClient({ name, serverUrl: urls, registry: testRegistry(name), logger: countingLogger(name) });
      clients.push(c);
      await c.start({ timeoutMs: 30_000 });
    }
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(replicas.map((r) => (r.proc.child.exitCode === null && r.proc.child.signalCode === null ? stopReplica(r) : undefined)));
    fs.rmSync(dir, { recursive: true, force: true });
    if (figures.length) console.log(`K of N through URLs, figures:\n  ${figures.join("\n  ")}`);
  });

  test(`a replica not assigned is dialled again about once, not on every backoff: refusals over ${windowS} s counted`, async () => {
    let wrong: string[] = [];
    await waitFor("every client held by its assigned replicas", async () => (wrong = await misplaced(replicas)).length === 0, 60_000, 250).catch(() =>
      assert.fail(`${wrong.length} clients misplaced: ${wrong.slice(0, 3).join(", ")}`),
    );
    // A slot refused while its client held nothing yet (every slot dials at once) tries once more on its backoff.
    await new Promise((r) => setTimeout(r, 5_000));
    const atStart = refusedTotal();
    const perPair = Math.max(0, ...[...refusals.values()].flatMap((m) => [...m.values()]));
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const inWindow = refusedTotal() - atStart;
    const pairs = clientCount * (n - k);
    figures.push(`until 5 s after placement settled: ${atStart} refusals over ${pairs} (client, replica not assigned) pairs, at most ${perPair} for one pair`);
    figures.push(`then over ${windowS} s: ${inWindow} refusals (${((inWindow / windowS / clientCount) * 1000).toFixed(1)} a second per 1,000 clients)`);
    assert.ok(inWindow <= pairs, `${inWindow} refusals in ${windowS} s for ${pairs} pairs: slots redial replicas that do not serve them`);
    assert.ok(perPair <= 4, `one client met the same replica's refusal ${perPair} times before placement settled`);
  });

  test("kill -9 of a replica: the clients it held take their new replica of the set left", async () => {
    const victim = replicas.at(-1)!;
    const live = replicas.slice(0, -1);
    const moved = names.filter((name) => assignedReplicas(name, replicas.map((r) => r.id), k).includes(victim.id));
    assert.ok(moved.length > 0, "the victim holds some client");
    const before = refusedTotal();
    const killedAt = performance.now();
    await victim.proc.kill();
    let wrong: string[] = [];
    await waitFor(`every client held by its ${k} assigned replicas of the ${live.length} left`, async () => (wrong = await misplaced(live)).length === 0, 90_000, 250).catch(() =>
      assert.fail(`${wrong.length} clients misplaced: ${wrong.slice(0, 3).join(", ")}`),
    );
    figures.push(`kill -9 of ${victim.id}: its ${moved.length} clients held by their new replica ${since(killedAt)} s later; ${refusedTotal() - before} refusals meanwhile`);
  });
});
