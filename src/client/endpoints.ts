import * as dns from "node:dns";
import * as net from "node:net";
import type { Logger } from "../shared/logger.ts";

/**
 * One place the client dials: a server URL, and, for one address of a DNS
 * name with several, that address (dialled while the URL's host name stays
 * the TLS server name and the `:authority`).
 *
 * @internal
 */
export interface Endpoint {
  /** Identifies the endpoint across resolutions: the URL, or the URL and the address. */
  key: string;
  url: URL;
  /** The address to dial instead of resolving `url`'s host name. */
  address?: string;
  /** For logs and callbacks: "host:port", or "host:port (address)". */
  display: string;
}

/** Resolves a host name to its addresses. @internal */
export type Resolver = (hostname: string) => Promise<string[]>;

/**
 * The default resolver: every address `dns.lookup` (the system's resolver,
 * `/etc/hosts` included) gives, of the family of the first one, so that a
 * dual-stack name (`localhost`: 127.0.0.1 and ::1) counts each host once.
 *
 * @internal
 */
export const systemResolver: Resolver = async (hostname) => {
  const all = await dns.promises.lookup(hostname, { all: true });
  const family = all[0]?.family;
  return all.filter((a) => a.family === family).map((a) => a.address);
};

/**
 * The endpoints of the client's server URLs, kept current: several URLs are
 * one endpoint each; one URL whose host name resolves to several addresses is
 * one endpoint per address, resolved again every `intervalMs`; one URL with
 * one address (or an IP literal, or a name that does not resolve now) is one
 * endpoint dialled by its name, as any HTTP client would. A name with more
 * than `maxAddresses` addresses is dialled at its first `maxAddresses` (sorted),
 * said once in the log: a DNS answer must not make the host hold hundreds of
 * connections. `onChange` hears every new set (never an empty one).
 *
 * @internal
 */
export function watchEndpoints(
  urls: URL[],
  o: { resolve: Resolver; intervalMs: number; maxAddresses: number; log: Logger; stopped: AbortSignal },
  onChange: (endpoints: Endpoint[]) => void,
): void {
  const byName = (url: URL): Endpoint => ({ key: url.href, url, display: url.host });
  const single = urls.length === 1 ? urls[0] : undefined;
  if (!single || net.isIP(bare(single.hostname)) !== 0) return onChange(urls.map(byName));
  const url = single;
  let current = "";
  let failing = false;
  let capped = false;
  const publish = (endpoints: Endpoint[]) => {
    const key = endpoints.map((e) => e.key).join(" ");
    if (key === current) return;
    current = key;
    onChange(endpoints);
  };
  const resolve = async () => {
    let addresses: string[];
    try {
      addresses = [...new Set(await o.resolve(url.hostname))].sort();
      if (failing) o.log.info("resolving the server's name works again", { host: url.hostname });
      failing = false;
    } catch (e) {
      // Keep the endpoints we have; the first time, dial by name (the connection attempts report the failure).
      if (!failing) o.log.warn("cannot resolve the server's name; keeping its last addresses", { host: url.hostname, reason: (e as Error).message });
      failing = true;
      if (current === "") publish([byName(url)]);
      return;
    }
    if (o.stopped.aborted) return;
    if (addresses.length <= 1) return publish([byName(url)]);
    if (addresses.length > o.maxAddresses) {
      if (!capped) {
        o.log.warn(`the server's name has ${addresses.length} addresses; dialling the first ${o.maxAddresses} only (option maxServerAddresses)`, { host: url.hostname });
      }
      capped = true;
      addresses = addresses.slice(0, o.maxAddresses);
    }
    publish(addresses.map((address) => ({ key: `${url.href} ${address}`, url, address, display: `${url.host} (${address})` })));
  };
  const timer = setInterval(() => void resolve(), o.intervalMs);
  timer.unref();
  o.stopped.addEventListener("abort", () => clearInterval(timer), { once: true });
  void resolve();
}

/**
 * A `lookup` for `http2.connect` that answers with one fixed address, so that
 * the connection goes there while the URL's host name is still used for TLS
 * (SNI, certificate check) and the `:authority`.
 *
 * @internal
 */
export function pinnedLookup(address: string): net.LookupFunction {
  const family = net.isIP(address);
  return (_hostname, options, callback) => {
    if ((options as dns.LookupAllOptions).all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

/** "[::1]" → "::1". */
function bare(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
}

/** The checked URLs of the `serverUrl` option (one, or a list); `tls`: the `tls` option is set. Throws a TypeError naming the option. @internal */
export function serverUrls(serverUrl: string | string[], tls: boolean): URL[] {
  const list = typeof serverUrl === "string" ? [serverUrl] : Array.isArray(serverUrl) ? serverUrl : [];
  if (list.length === 0) throw new TypeError("promproxy: option serverUrl must be a URL or a non-empty list of URLs");
  const urls = list.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new TypeError(`promproxy: option serverUrl ${JSON.stringify(u)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`promproxy: option serverUrl must be http:// or https://, got ${JSON.stringify(u)}`);
    }
    if (tls && url.protocol !== "https:") throw new TypeError("promproxy: option tls needs an https:// serverUrl");
    return url;
  });
  if (new Set(urls.map((u) => u.href)).size !== urls.length) throw new TypeError("promproxy: option serverUrl lists a URL twice");
  return urls;
}
