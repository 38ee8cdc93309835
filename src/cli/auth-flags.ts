/**
 * Command-line flags for auth and TLS of `promproxy server` and `promproxy
 * client` (their rows are in src/cli/server-flags.ts and
 * src/cli/client-flags.ts): the functions that turn their values into options. Errors are
 * TypeErrors (the commands print them as usage errors); secrets are read from
 * files, never taken on the command line.
 *
 * @internal
 */
import * as fs from "node:fs";
import type { Interceptor } from "@connectrpc/connect";
import { createTlsCredentials, type ListenTlsOptions } from "../auth/tls-credentials.ts";
import { bearerAuth } from "../auth/stream/bearer-auth.ts";
import { bearerToken } from "../auth/client/bearer-token.ts";
import { clientTlsFromFiles, type ClientTlsOptions } from "../auth/client/client-tls.ts";
import { mtlsAuth } from "../auth/stream/mtls-auth.ts";
import { hashPassword } from "../auth/prometheus/passwords.ts";
import { createPromGate, type PromAuthOptions, type PromEndpoint } from "../auth/prometheus/prom-auth.ts";
import type { Logger } from "../shared/logger.ts";
import type { ServerValues } from "./server-flags.ts";

// ---------------------------------------------------------------------------------------------
// promproxy client

/** Values of the client's connection flags (src/cli/client-flags.ts), by their camel-case names. */
export interface ClientAuthFlags {
  tokenFile?: string;
  serverCaFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
}

/**
 * Client options from the flags: a bearer token read from its file for every
 * connection attempt, and TLS files read likewise (rotation without restart).
 * Checks now that the files can be read, so that a typo fails at startup.
 */
export function clientAuthOptions(flags: ClientAuthFlags, serverUrl: string): { interceptors: Interceptor[]; tls?: () => Promise<ClientTlsOptions> } {
  const interceptors: Interceptor[] = [];
  const { tokenFile, serverCaFile, clientCertFile, clientKeyFile } = flags;
  for (const [flag, file] of [["--token-file", tokenFile], ["--server-ca-file", serverCaFile], ["--client-cert-file", clientCertFile], ["--client-key-file", clientKeyFile]] as const) {
    if (file !== undefined) readable(file, flag);
  }
  if (tokenFile !== undefined) {
    if (fs.readFileSync(tokenFile, "utf8").trim() === "") throw new TypeError(`--token-file ${tokenFile} is empty`);
    interceptors.push(bearerToken(() => fs.promises.readFile(tokenFile, "utf8")));
  }
  if (serverCaFile === undefined && clientCertFile === undefined && clientKeyFile === undefined) return { interceptors };
  if ((clientCertFile === undefined) !== (clientKeyFile === undefined)) throw new TypeError("--client-cert-file and --client-key-file go together");
  if (!serverUrl.startsWith("https://")) throw new TypeError("--server-ca-file, --client-cert-file and --client-key-file need an https:// server");
  return { interceptors, tls: clientTlsFromFiles({ caFile: serverCaFile, certFile: clientCertFile, keyFile: clientKeyFile }) };
}

function readable(file: string, flag: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (e) {
    throw new TypeError(`${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// promproxy server

/** Server options and the listen TLS options from the flags. */
export function serverAuthOptions(
  v: ServerValues,
  logger: Logger,
): { interceptors: Interceptor[]; promAuth?: PromAuthOptions; tls?: ListenTlsOptions } {
  for (const k of ["tls-cert-file", "tls-key-file", "tls-client-ca-file", "client-token-file", "prom-users-file", "prom-token-file"] as const) {
    const f = v[k];
    if (typeof f === "string") readable(f, `--${k}`);
  }
  const cert = v["tls-cert-file"];
  const key = v["tls-key-file"];
  const clientCa = v["tls-client-ca-file"];
  if ((cert === undefined) !== (key === undefined)) throw new TypeError("--tls-cert-file and --tls-key-file go together");
  if (clientCa !== undefined && cert === undefined) throw new TypeError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file");
  if (v["tls-require-client-cert"] && clientCa === undefined) throw new TypeError("--tls-require-client-cert needs --tls-client-ca-file");
  const tls: ListenTlsOptions | undefined =
    cert !== undefined && key !== undefined
      ? {
          certFile: cert,
          keyFile: key,
          ...(clientCa !== undefined ? { caFile: clientCa, requestCert: true, rejectUnauthorized: v["tls-require-client-cert"] === true } : {}),
        }
      : undefined;

  if (tls) createTlsCredentials(tls, logger); // a bad certificate or key fails here, as a usage error
  const interceptors: Interceptor[] = [];
  if (clientCa !== undefined) interceptors.push(mtlsAuth());
  const tokenFile = v["client-token-file"];
  if (tokenFile !== undefined) interceptors.push(bearerAuth({ tokenFile, logger }));

  let promAuth: PromAuthOptions | undefined;
  const usersFile = v["prom-users-file"];
  const promTokenFile = v["prom-token-file"];
  const endpoints = v["prom-auth-endpoints"];
  if (usersFile !== undefined || promTokenFile !== undefined) {
    const protect: Partial<Record<PromEndpoint, boolean>> = {};
    if (endpoints !== undefined) {
      const list = endpoints.split(",").map((s) => s.trim()).filter(Boolean);
      for (const e of list) {
        if (e !== "proxy" && e !== "clients" && e !== "metrics") throw new TypeError(`--prom-auth-endpoints: unknown endpoint ${JSON.stringify(e)} (proxy, clients, metrics)`);
      }
      for (const e of ["proxy", "clients", "metrics"] as const) protect[e] = list.includes(e);
    }
    promAuth = {
      usersFile,
      tokenFile: promTokenFile,
      protect,
      failureBurst: count(v, "prom-failure-burst"),
      failureRefillMs: count(v, "prom-failure-refill-ms"),
      maxConcurrentChecks: count(v, "prom-max-checks"),
    };
    createPromGate(promAuth, logger); // a bad file fails here, as a usage error
  } else {
    for (const k of ["prom-auth-endpoints", "prom-failure-burst", "prom-failure-refill-ms", "prom-max-checks"] as const) {
      if (v[k] !== undefined) throw new TypeError(`--${k} needs --prom-users-file or --prom-token-file`);
    }
  }
  return { interceptors, promAuth, tls };
}

/** A flag's positive integer, or undefined when it is not given. */
function count(v: ServerValues, flag: "prom-failure-burst" | "prom-failure-refill-ms" | "prom-max-checks"): number | undefined {
  const s = v[flag];
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < 1) throw new TypeError(`--${flag}: want a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

/** Reads a password from stdin (one trailing newline dropped) and returns its scrypt hash. */
export async function hashPasswordFromStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : c);
  const password = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (password === "") throw new TypeError("--hash-password: no password on stdin (try: printf %s 'PASSWORD' | promproxy server --hash-password)");
  return hashPassword(password);
}

/** The Prometheus configuration for a TLS and/or authenticated server, with placeholders for secrets. */
export function secureScrapeConfig(hostPort: string, o: { tls: boolean; basic: boolean; bearer: boolean; protect?: Partial<Record<PromEndpoint, boolean>> }): string {
  const scheme = o.tls ? "https" : "http";
  const on = (e: PromEndpoint) => o.protect?.[e] ?? true;
  const userinfo = o.basic && on("proxy") ? "USER:PASSWORD@" : "";
  const tlsBlock = (indent: string) => (o.tls ? `\n${indent}tls_config:\n${indent}  ca_file: /path/to/ca.pem` : "");
  const auth = (indent: string, endpoint: PromEndpoint) =>
    !on(endpoint)
      ? ""
      : o.basic
        ? `\n${indent}basic_auth:\n${indent}  username: USER\n${indent}  password_file: /path/to/password`
        : o.bearer
          ? `\n${indent}authorization:\n${indent}  credentials_file: /path/to/token`
          : "";
  const proxyAuth = !o.basic && o.bearer && on("proxy") ? auth("    ", "proxy") : "";
  return `scrape_configs:
  - job_name: promproxy
    proxy_url: ${scheme}://${userinfo}${hostPort}${tlsBlock("    ")}${proxyAuth}
    http_sd_configs:
      - url: ${scheme}://${hostPort}/clients${auth("        ", "clients")}${tlsBlock("        ")}`;
}
