/**
 * The replica set (feature "replica-set", PROTOCOL.md "The replica set"): the
 * scripted server plays two replicas behind one address. A client that names
 * the feature, welcomed by r1 with the set [r1, r2], must open another stream
 * at once (held by r2), serve on both. A ReplicaSet frame [r1] from r1 must
 * not close the r2 stream (each stream follows its own replica's set: a rogue
 * or a stale view cannot cut the client off another replica); the same frame
 * from r2 must: a goodbye (a half-close), and no search for r2 again. A client that does not name the feature must
 * still take a welcome carrying a set and ignore the frame.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { replicaIdKey } from "../../shared/replica-header.ts";
import { assertHealthy, awaitSession, lastLine, scrapeOk, scriptedServer } from "../harness.ts";
import { check, notOffered, pass, sleep, type Scenario } from "../scenario.ts";

/** How soon a client must open its stream to a replica of the set it does not hold (fast rounds: 0.1 s doubling; slack for a loaded machine). */
const searchWithinMs = 12_000;
/** How soon it must close a stream to a replica that left the set. */
const forgetWithinMs = 5_000;

export const replicaSet: Scenario = {
  id: "replica-set",
  title: 'replica set (feature "replica-set"): searched at once; a stream follows its own replica\'s set only',
  timeoutMs: 60_000,
  async run(ctx) {
    let accepted = 0;
    // Two streams are welcomed (r1, then r2); more searchers landing meanwhile meet "r1", which the client holds.
    const refuse = () => (++accepted > 2 ? new ConnectError("the name is held on replica r1 (conformance)", Code.AlreadyExists, new Headers({ [replicaIdKey]: "r1" })) : undefined);
    const server = await scriptedServer(ctx, { refuse });
    const client = ctx.launch(server.url);
    const first = await awaitSession(server, client, 20_000);
    if (!first.hello.features.includes("replica-set")) {
      first.welcome({ replicaId: "r1", replicaIds: ["r1"] });
      first.send({ frame: { case: "replicaSet", value: { replicaIds: ["r1", "r9"], replicasPerClient: 0 } } });
      await scrapeOk(first);
      await sleep(500);
      assertHealthy(server, first);
      return notOffered('the hello names no feature "replica-set" (a welcome with a replica set and the frame were taken in stride)');
    }
    const set = ["r1", "r2"];
    first.welcome({ replicaId: "r1", replicaIds: set, features: ["replica-set"] });
    const welcomedAt = Date.now();
    const second = await awaitSession(server, client, searchWithinMs).catch(() => {
      throw new Error(`no stream for r2, in the set since the welcome, within ${searchWithinMs / 1000}s (client output: ${lastLine(client)})`);
    });
    const foundMs = Date.now() - welcomedAt;
    const held = second.hello.heldReplicaIds;
    check(held.length === 0 || held.includes("r1"), () => `the second hello lists held replicas [${held.join(", ")}] without r1`);
    second.welcome({ replicaId: "r2", replicaIds: set, features: ["replica-set"] });
    await scrapeOk(first);
    await scrapeOk(second);
    // r1 says the set is [r1]: another replica's view, r2's stream stays.
    first.send({ frame: { case: "replicaSet", value: { replicaIds: ["r1"], replicasPerClient: 0 } } });
    await sleep(1_500);
    check(second.open, () => `r1's set [r1] closed the stream to r2 (only r2's own set may): ${second.endedHow}`);
    // r2 itself says it left the set: its stream is closed with a goodbye, r1's stays.
    second.send({ frame: { case: "replicaSet", value: { replicaIds: ["r1"], replicasPerClient: 0 } } });
    const sentAt = Date.now();
    const how = await Promise.race([second.ended, sleep(forgetWithinMs).then(() => undefined)]);
    check(how !== undefined, `the stream to r2 was still open ${forgetWithinMs / 1000}s after r2's own set [r1] arrived`);
    check(second.halfClosedAt !== undefined, () => `the stream to r2 ended without a goodbye (half-close): ${how}`);
    const forgotMs = (second.halfClosedAt ?? sentAt) - sentAt;
    const streams = server.sessions.length;
    await sleep(3_000);
    check(server.sessions.length === streams, "the client opened a stream again after the set shrank to the replica it holds");
    await scrapeOk(first);
    check(first.open, () => `the stream to r1 ended: ${first.endedHow}`);
    const broken = [...server.violations, ...first.violations, ...second.violations];
    check(broken.length === 0, () => `protocol violation: ${broken[0]}`);
    return pass(`r2 dialled ${(foundMs / 1000).toFixed(1)}s after the welcome named it; closed with a goodbye ${(forgotMs / 1000).toFixed(1)}s after it left the set; no search since`);
  },
};
