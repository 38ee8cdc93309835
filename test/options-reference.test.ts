/**
 * docs/options.md is the one options reference: this test holds it against the code, so that an option missing
 * from it, or a default stated wrong, fails here.
 *
 * - server and `listen()` options: every field of `ServerOptions` and `ListenOptions` (read from src/server/options.ts) has a row whose default is
 *   what `resolveServerOptions({})` / `resolveListenOptions({})` give (derived defaults checked by calling the resolver with their base set);
 * - client and `promAuth` options: every field of `ClientOptions` and `PromAuthOptions` has a row whose default is
 *   the one its doc comment states ("Default X"): there is no single resolver to call;
 * - server and forwarder flags: every flag of the parseArgs spec has a row, with the default the usage text shows
 *   in brackets.
 *
 * The markdown is parsed as tables (cells split on `|` outside backticks), rows keyed by the backticked names of
 * their first cell, so that wording and row order may change freely.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { hostname } from "node:os";
import { register } from "prom-client";
import { resolveClientOptions } from "../src/client/options.ts";
import { resolveServerOptions } from "../src/server/options.ts";
import { resolveListenOptions } from "../src/server/listen/listen-options.ts";
import { serverOptionSpec, serverUsage } from "../src/cli/server-flags.ts";
import { clientOptionSpec, clientUsage } from "../src/cli/client-flags.ts";

const read = (rel: string) => fs.readFileSync(new URL(`../${rel}`, import.meta.url), "utf8");
const doc = read("docs/options.md");

/** The text of a `## ` section of docs/options.md, by the start of its heading. */
function section(heading: string): string {
  const parts = doc.split(/^## /m);
  const found = parts.filter((p) => p.startsWith(heading));
  assert.equal(found.length, 1, `docs/options.md has one section "## ${heading}"`);
  return found[0]!;
}

/** Splits a table row into cells on `|` outside backticks. */
function cells(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let code = false;
  for (const ch of line.trim().replace(/^\|/, "").replace(/\|$/, "")) {
    if (ch === "`") code = !code;
    if (ch === "|" && !code) {
      out.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/**
 * Rows of every table in a section: key -> default cell. A first cell naming several keys (`a` / `b`) with a
 * default cell of as many parts (`1 / 2`) gives each key its part. A key in two rows fails: a default is stated once.
 */
function rows(text: string, key: (name: string) => string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("|") || /^\|[-| ]+\|$/.test(line.trim())) continue;
    const c = cells(line);
    if (c.length < 3) continue;
    const names = [...c[0]!.matchAll(/`([^`]+)`/g)].map((m) => key(m[1]!)).filter((k): k is string => k !== undefined);
    const defaults = names.length > 1 ? c[1]!.split(" / ") : [c[1]!];
    names.forEach((n, i) => {
      assert.ok(!out.has(n), `${n} is stated once in docs/options.md`);
      out.set(n, (defaults.length === names.length ? defaults[i] : c[1])!);
    });
  }
  return out;
}

const units: Record<string, number> = {
  "": 1, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000,
  b: 1, bytes: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1e3, mb: 1e6, gb: 1e9,
};

/**
 * The amount a cell starts with: "15 000", "256 MiB", "`5s`", "600 000 (10 min)", "10 failures per address" -> a
 * number (ms or bytes); undefined when the cell does not start with one.
 */
function amount(text: string): number | undefined {
  const t = text.replace(/`/g, "").trim();
  const m = /^(\d(?:[\d,_]| (?=\d{3}\b))*(?:\.\d+)?)(?:\s*([a-z]+)\b)?/i.exec(t);
  if (!m) return undefined;
  const unit = units[(m[2] ?? "").toLowerCase()] ?? 1;
  return Number(m[1]!.replace(/[\s,_]/g, "")) * unit;
}

const norm = (s: string) => s.toLowerCase().replace(/`/g, "").replace(/--/g, "").replace(/\s+/g, " ").trim();

/** Field names of an exported interface in a source file, in order. */
function fields(file: string, iface: string): string[] {
  const src = read(file);
  const body = new RegExp(`export interface ${iface}(?: extends [\\w, ]+)? \\{([\\s\\S]*?)\\n\\}`).exec(src)?.[1];
  assert.ok(body, `${file} declares ${iface}`);
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]!);
}

/** Each field's "Default ..." clause from its doc comment (first sentence after "Default"). */
function commentDefaults(file: string, iface: string): Map<string, string | undefined> {
  const src = read(file);
  const body = new RegExp(`export interface ${iface}(?: extends [\\w, ]+)? \\{([\\s\\S]*?)\\n\\}`).exec(src)![1]!;
  const out = new Map<string, string | undefined>();
  for (const m of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*\n {2}(\w+)\??:/g)) {
    const text = m[1]!.replace(/\n\s*\* ?/g, " ").replace(/\s+/g, " ");
    const d = /\bDefault:?\s+(.*?)(?:\.\s|\.?\s*$)/.exec(text)?.[1];
    out.set(m[2]!, d ?? (/\bRequired\b/.test(text) ? "required" : undefined));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------- server options

test("options reference: every ServerOptions field is listed with the default resolveServerOptions gives", () => {
  const table = rows(section("Server options"), (n) => (/^\w+$/.test(n) ? n : undefined));
  const resolved = resolveServerOptions({}) as unknown as Record<string, unknown>;
  const names = fields("src/server/options.ts", "ServerOptions");
  assert.ok(names.length > 25, "ServerOptions parsed");
  const missing = names.filter((n) => !table.has(n));
  assert.deepEqual(missing, [], "ServerOptions fields missing from docs/options.md");
  // Defaults that depend on another option: the doc names the rule, the resolver applies it.
  const derived: Record<string, () => void> = {
    heartbeatTimeoutMs: () => {
      assert.match(table.get("heartbeatTimeoutMs")!, /^3 × /);
      assert.equal(resolveServerOptions({ heartbeatIntervalMs: 1000 }).heartbeatTimeoutMs, 3000);
      assert.equal(resolved.heartbeatTimeoutMs, 3 * (resolved.heartbeatIntervalMs as number));
    },
    maxVanishedPerIdentity: () => {
      assert.equal(norm(table.get("maxVanishedPerIdentity")!), "maxclients");
      assert.equal(resolveServerOptions({ maxClients: 7 }).maxVanishedPerIdentity, 7);
      assert.equal(resolved.maxVanishedPerIdentity, resolved.maxClients);
    },
    warmupSettleMs: () => {
      const [when, otherwise] = table.get("warmupSettleMs")!.split(/ when `warmupMs` is set, else /);
      assert.equal(amount(when!), resolveServerOptions({ warmupMs: 1000 }).warmupSettleMs);
      assert.equal(amount(otherwise!), resolved.warmupSettleMs);
    },
    maxPeerStateBytes: () => {
      assert.match(table.get("maxPeerStateBytes")!, /^`maxDiscoveryBytes` \+ 64 KiB$/);
      assert.equal(resolveServerOptions({ maxDiscoveryBytes: 1000 }).maxPeerStateBytes, 1000 + 64 * 1024);
      assert.equal(resolved.maxPeerStateBytes, (resolved.maxDiscoveryBytes as number) + 64 * 1024);
    },
    warmupMaxMs: () => {
      assert.match(table.get("warmupMaxMs")!, /^6 × `warmupMs`$/);
      assert.equal(resolveServerOptions({ warmupMs: 1000 }).warmupMaxMs, 6000);
    },
  };
  for (const name of names) {
    const stated = table.get(name)!;
    const value = resolved[name];
    if (derived[name]) derived[name]();
    else if (typeof value === "boolean") assert.equal(stated, String(value), `${name}: docs/options.md says "${stated}", the resolver gives ${value}`);
    else if (typeof value === "number") assert.equal(amount(stated), value, `${name}: docs/options.md says "${stated}", the resolver gives ${value}`);
    else if (name === "replicaId") {
      assert.match(stated, /^the host name and a random suffix/);
      assert.ok((value as string).startsWith(`${hostname()}-`), "replicaId: the host name and a suffix");
    } else if (name === "registry") {
      assert.match(stated, /a fresh `Registry`/);
      assert.notEqual(value, register, "never the global registry");
    } else if (name === "logger") assert.match(stated, /^warnings and errors to stderr$/);
    else {
      assert.ok(value === undefined || (Array.isArray(value) && value.length === 0), `${name}: a default of "none"`);
      assert.equal(stated, "none", `${name}: no default`);
    }
  }
});

// ------------------------------------------------------------------------------------------------- client options

/** "500 ms doubling to 30 s, half of each random" -> the BackoffOptions it describes. */
function backoffWords(text: string): Record<string, number> | undefined {
  const m = /^(.+?) doubling to (.+?), half of each random$/.exec(text);
  return m ? { initialMs: amount(m[1]!)!, maxMs: amount(m[2]!)!, multiplier: 2, jitter: 0.5 } : undefined;
}

/** "`{ initialMs: 100, maxMs: 2000, ... }`" -> its fields. */
function objectCell(text: string): Record<string, number> {
  return Object.fromEntries([...text.matchAll(/(\w+): ([\d.]+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

/** Every field of `iface` has a row in the section, with the default its doc comment states; returns how many were compared. */
function checkCommented(heading: string, file: string, iface: string, minFields = 10): number {
  const table = rows(section(heading), (n) => (/^\w+$/.test(n) ? n : undefined));
  const names = fields(file, iface);
  assert.ok(names.length > minFields, `${iface} parsed`);
  assert.deepEqual(names.filter((n) => !table.has(n)), [], `${iface} fields missing from docs/options.md`);
  const comments = commentDefaults(file, iface);
  let checked = 0;
  for (const name of names) {
    const said = comments.get(name);
    const stated = table.get(name)!;
    if (said === undefined) continue; // callbacks: nothing to default
    checked++;
    const at = `${name}: the doc comment says "${said}", docs/options.md "${stated}"`;
    const words = backoffWords(said);
    const quoted = /^"([^"]*)"/.exec(said)?.[1];
    if (words) assert.deepEqual(objectCell(stated), words, at);
    else if (amount(said) !== undefined) assert.equal(amount(stated), amount(said), at);
    else if (quoted !== undefined) assert.ok(stated.includes(`\`"${quoted}"\``) || stated.includes(`\`${quoted}\``), at);
    else if (/^(none|required)\b/.test(said)) assert.equal(stated, said.split(/\s/)[0], at);
    else {
      // Free words: the code names of the sentence (or, without any, its first clause) appear in the table.
      let clause = said;
      for (let prev = ""; prev !== clause; ) [prev, clause] = [clause, clause.replace(/\([^()]*\)/g, "")];
      clause = clause.replace(/\s+/g, " ").trim();
      const code = [...clause.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      for (const c of code.length > 0 ? code : [clause.split(",")[0]!]) assert.ok(norm(stated).includes(norm(c)), `${at}: "${c}" is missing`);
    }
  }
  return checked;
}

test("options reference: every ClientOptions field is listed with the default its doc comment states", () => {
  const checked = checkCommented("Client options", "src/client/options.ts", "ClientOptions");
  assert.ok(checked > 25, `defaults compared: ${checked}`);
});

test("options reference: every RegistryOptions field (ClientOptions extends them) is listed with the default its doc comment states", () => {
  assert.match(read("src/client/options.ts"), /export interface ClientOptions extends RegistryOptions \{/);
  const checked = checkCommented("Client options", "src/client/registry-options.ts", "RegistryOptions", 4);
  assert.equal(checked, 5, `defaults compared: ${checked}`);
});

test("options reference: the client resolver's defaults are the ones listed", () => {
  const table = rows(section("Client options"), (n) => (/^\w+$/.test(n) ? n : undefined));
  const resolved = resolveClientOptions({ name: "app-1", serverUrl: "http://127.0.0.1:1" }) as unknown as Record<string, unknown>;
  let compared = 0;
  for (const [name, stated] of table) {
    const value = resolved[name];
    // "a / b" cells list the defaults of "`x` / `y`" rows in order.
    const cell = stated.includes(" / ") ? stated.split(" / ")[name === "pingTimeoutMs" ? 1 : 0]! : stated;
    if (typeof value === "number") assert.equal(amount(cell), value, `${name}: docs/options.md says "${stated}", the resolver gives ${value}`);
    else if (typeof value === "string" && name !== "name") assert.ok(cell.includes(value), `${name}: docs/options.md says "${stated}", the resolver gives ${value}`);
    else if (value !== null && typeof value === "object" && "initialMs" in value) assert.deepEqual(objectCell(cell), value, name);
    else continue;
    compared++;
  }
  assert.ok(compared >= 16, `defaults compared: ${compared}`);
});

test("options reference: every PromAuthOptions field is listed with the default its doc comment states", () => {
  const checked = checkCommented("Prometheus auth options", "src/auth/prometheus/prom-auth.ts", "PromAuthOptions");
  assert.ok(checked > 12, `defaults compared: ${checked}`);
});

// ------------------------------------------------------------------------------------------------- flags

/** flag -> default, from a usage text: "[default]" at the end of the flag's line or its continuation lines. */
function usageDefaults(usage: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const line of usage.split("\n")) {
    const flag = /^ {2}(--[a-z0-9-]+)/.exec(line)?.[1];
    if (flag) {
      current = flag;
      out.set(flag, undefined);
    } else if (!/^ {6,}\S/.test(line)) current = undefined;
    if (current === undefined) continue;
    const d = /\[([^\]]+)\]\s*$/.exec(line)?.[1] ?? (/\(required\)\s*$/.test(line) ? "required" : undefined);
    if (d !== undefined) out.set(current, d);
  }
  return out;
}

function checkFlags(heading: string, spec: Record<string, unknown>, usage: string): void {
  const table = rows(section(heading), (n) => /^--[a-z0-9-]+/.exec(n)?.[0]);
  const defaults = usageDefaults(usage);
  const flags = Object.keys(spec).filter((k) => k !== "help").map((k) => `--${k}`);
  assert.ok(flags.length > 15, "spec read");
  assert.deepEqual(flags.filter((f) => !defaults.has(f)), [], `${heading}: every flag of the spec is in the usage text`);
  assert.deepEqual(flags.filter((f) => !table.has(f)), [], `${heading}: flags missing from docs/options.md`);
  assert.deepEqual([...table.keys()].filter((f) => !flags.includes(f)), [], `${heading}: rows for flags that do not exist`);
  let checked = 0;
  for (const f of flags) {
    const usageDefault = defaults.get(f);
    if (usageDefault === undefined) continue;
    checked++;
    const stated = table.get(f)!;
    const at = `${f}: the usage text says [${usageDefault}], docs/options.md "${stated}"`;
    if (amount(usageDefault) !== undefined) assert.equal(amount(stated), amount(usageDefault), at);
    else assert.ok(norm(stated).includes(norm(usageDefault)), at);
  }
  assert.ok(checked > 10, `${heading}: defaults compared: ${checked}`);
}

test("options reference: every server flag is listed with the default its usage text shows", () => {
  checkFlags("Server flags", serverOptionSpec, serverUsage);
});

test("options reference: every forwarder flag is listed with the default its usage text shows", () => {
  checkFlags("Forwarder flags", clientOptionSpec, clientUsage);
});

test("options reference: the amounts parser reads the forms the tables use", () => {
  assert.equal(amount("15 000"), 15_000);
  assert.equal(amount("`5m`"), 300_000);
  assert.equal(amount("256 MiB"), 256 * 1024 ** 2);
  assert.equal(amount("256MiB"), 256 * 1024 ** 2);
  assert.equal(amount("600 000 (10 min)"), 600_000);
  assert.equal(amount("0 (the CLI: 5 s)"), 0);
  assert.equal(amount("10 failures per address"), 10);
  assert.equal(amount("1 024"), 1024);
  assert.equal(amount("32 labels"), 32);
  assert.equal(amount("the scrape's deadline"), undefined);
  assert.equal(amount("`maxClients` + 1 000 (11 000)"), undefined);
});

test("options reference: every listen() option is listed with the default resolveListenOptions gives", () => {
  const table = rows(section("`listen()` options"), (n) => (/^\w+$/.test(n) ? n : undefined));
  const names = fields("src/server/listen/listen-options.ts", "ListenOptions");
  assert.deepEqual(names.filter((n) => !table.has(n)), [], "ListenOptions fields missing from docs/options.md");
  const resolved = resolveListenOptions({}, { maxClients: resolveServerOptions({}).maxClients }) as unknown as Record<string, unknown>;
  for (const name of names) {
    const stated = table.get(name)!;
    const value = resolved[name];
    if (name === "maxConnections") {
      assert.match(stated, /^`maxClients` \+ 1 000 \((.+)\)$/);
      assert.equal(amount(/\((.+)\)/.exec(stated)![1]!), value, `${name}: docs/options.md says "${stated}"`);
      assert.equal(resolveListenOptions({}, { maxClients: 5 }).maxConnections, 1005, "maxClients + 1 000");
    } else if (typeof value === "number") assert.equal(amount(stated), value, `${name}: docs/options.md says "${stated}", the resolver gives ${value}`);
    else if (typeof value === "string") assert.equal(stated, `\`"${value}"\``, `${name}: docs/options.md says "${stated}"`);
    else assert.equal(stated, "cleartext", `${name}: without it, cleartext`);
  }
});
