/**
 * Every conformance scenario, in the order the table lists them (the protocol's
 * own order: hello, results, cancels, liveness, errors, evolution, reconnects).
 *
 * @internal
 */
import type { Scenario } from "../scenario.ts";
import { concurrentScrapes, defaultChunkLimit, headOrder, helloWelcome, plainScrape, tightCredit } from "./bodies.ts";
import { cancelAfterEnd, cancelMidBody, orderTimeout, unknownIds } from "./cancel.ts";
import { duplicateName, helloLabels } from "./discovery.ts";
import { notFound, unknownFrames } from "./evolution.ts";
import { idleSurvival, pingPong, reconnectAfterEnd, reconnectAfterRestart } from "./liveness.ts";

export const allScenarios: readonly Scenario[] = [
  helloWelcome,
  helloLabels,
  plainScrape,
  tightCredit,
  defaultChunkLimit,
  concurrentScrapes,
  cancelMidBody,
  cancelAfterEnd,
  unknownIds,
  pingPong,
  idleSurvival,
  orderTimeout,
  notFound,
  duplicateName,
  unknownFrames,
  headOrder,
  reconnectAfterEnd,
  reconnectAfterRestart,
];
