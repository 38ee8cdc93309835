/**
 * The steps most scenarios share: a scripted server with the client under
 * test connected to it, a scrape that must succeed, and the check that the
 * stream is still up with no rule broken.
 *
 * @internal
 */
import type { ClientProcess } from "./client-process.ts";
import { checkResult } from "./result-check.ts";
import { check, CheckFailed, type ScenarioContext } from "./scenario.ts";
import type { OrderOptions, ScrapeRecord } from "./scrape-ledger.ts";
import { startScriptedServer, type ScriptedServer, type ScriptedServerOptions } from "./scripted-server.ts";
import type { ScriptedSession, WelcomeOptions } from "./scripted-session.ts";

/** A client under test connected to a scripted server. */
export interface Connected {
  server: ScriptedServer;
  client: ClientProcess;
  session: ScriptedSession;
}

/** How long a freshly launched client may take to open its stream (interpreters and npx start slowly). */
export const connectWithinMs = 20_000;

/** A scripted server, closed when the scenario ends. */
export async function scriptedServer(ctx: ScenarioContext, options: ScriptedServerOptions = {}): Promise<ScriptedServer> {
  const server = await startScriptedServer(options);
  ctx.defer(() => server.close());
  return server;
}

/**
 * Starts a scripted server, launches the client under test against it, and
 * waits for its stream; welcomes it with `welcome` (unless false).
 */
export async function connectClient(
  ctx: ScenarioContext,
  { welcome = {}, server: serverOptions }: { welcome?: WelcomeOptions | false; server?: ScriptedServerOptions } = {},
): Promise<Connected> {
  const server = await scriptedServer(ctx, serverOptions);
  const client = ctx.launch(server.url);
  const session = await awaitSession(server, client, connectWithinMs);
  if (welcome) session.welcome(welcome);
  return { server, client, session };
}

/** The server's next session; fails early, with its last output, when the client process exits first. */
export async function awaitSession(server: ScriptedServer, client: ClientProcess, timeoutMs: number): Promise<ScriptedSession> {
  const exited = client.exited.then(({ code, signal }) => {
    throw new CheckFailed(`the client exited (${signal ?? `code ${code}`}) before it opened a stream: ${lastLine(client)}`);
  });
  exited.catch(() => {});
  try {
    return await Promise.race([server.nextSession(timeoutMs), exited]);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    const broken = server.violations[0] ? `; protocol violation: ${server.violations[0]}` : "";
    throw new CheckFailed(`${(e as Error).message}${broken}; client output: ${lastLine(client)}`);
  }
}

/** The client's last line of output, for a detail. */
export function lastLine(client: ClientProcess): string {
  return JSON.stringify(client.output(1).slice(0, 200) || "(none)");
}

/** Orders a scrape and waits for it; fails unless it succeeded with a good result. */
export async function scrapeOk(session: ScriptedSession, order: Partial<OrderOptions> = {}, timeoutMs = 20_000): Promise<ScrapeRecord> {
  const t = session.order({ creditBytes: 64 * 1024, grantBytes: 64 * 1024, ...order });
  const r = await t.settled(timeoutMs).catch((e: Error) => {
    throw new CheckFailed(e.message);
  });
  const problem = checkResult(r, { headOnly: order.method === "HEAD" });
  check(!problem, () => problem ?? "");
  return r;
}

/** Fails when the client broke a rule on this server, or its stream ended, or it opened another one. */
export function assertHealthy(server: ScriptedServer, session: ScriptedSession): void {
  const broken = [...server.violations, ...session.violations];
  check(broken.length === 0, () => `protocol violation: ${broken[0]}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ""}`);
  check(session.open, () => `the stream ended: ${session.endedHow}`);
  check(server.sessions.at(-1) === session, "the client opened another stream");
}
