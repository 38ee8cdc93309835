/**
 * The server's address as a name: `{server}` is `http://localhost:PORT`, so
 * the client must resolve a DNS name (the system's resolver: `localhost` is
 * in every /etc/hosts) and carry `HOST:PORT` as written in `:authority`.
 * Whether it resolves the name again later cannot be seen from outside: the
 * kit cannot change what a name resolves to (PROTOCOL.md, "The conformance kit").
 *
 * @internal
 */
import { assertHealthy, awaitSession, connectWithinMs, scrapeOk, scriptedServer } from "../harness.ts";
import { check, pass, type Scenario } from "../scenario.ts";

export const serverName: Scenario = {
  id: "server-name",
  title: "the server as a name (http://localhost:PORT): dialled, :authority is localhost:PORT",
  timeoutMs: 40_000,
  async run(ctx) {
    // `localhost` may resolve to ::1 first: listen there too where the machine has IPv6 loopback.
    const server = await scriptedServer(ctx, { ipv6Too: true });
    const client = ctx.launch(`http://localhost:${server.port}`);
    const session = await awaitSession(server, client, connectWithinMs);
    const want = `localhost:${server.port}`;
    check(session.authority.toLowerCase() === want, `:authority ${JSON.stringify(session.authority)}, want ${JSON.stringify(want)} (the URL's host and port as written)`);
    session.welcome();
    await scrapeOk(session);
    assertHealthy(server, session);
    return pass(`dialled ${want} (over ${session.localAddress || "?"}; IPv6 loopback ${server.ipv6 ? "listened on too" : "absent"}), :authority ${session.authority}, scrape ok`);
  },
};
