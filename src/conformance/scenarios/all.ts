/**
 * Every conformance scenario, in the order the table lists them (the protocol's
 * own order: hello, results, cancels, liveness, errors, evolution, retries, leaving).
 *
 * @internal
 */
import type { Scenario } from "../scenario.ts";
import { serverName } from "./address.ts";
import { concurrentScrapes, defaultChunkLimit, headOrder, helloWelcome, plainScrape, tightCredit } from "./bodies.ts";
import { cancelAfterEnd, cancelMidBody, orderTimeout, unknownIds } from "./cancel.ts";
import { duplicateName, helloLabels } from "./discovery.ts";
import { notFound, unknownFrames } from "./evolution.ts";
import { leave, leaveUnanswered } from "./leaving.ts";
import { replicaSet } from "./replica-set.ts";
import { idleSurvival, pingPong, reconnectAfterEnd, reconnectAfterRestart } from "./liveness.ts";
import { backoff, fatalInvalidArgument, fatalPermissionDenied, fatalUnauthenticated, resetAfterWelcome } from "./retries.ts";
import { singleResult } from "./single-result.ts";
import { retryHint, retryHintHostile, welcomePatience } from "./storm.ts";
import { silence, unknownBeforeWelcome, welcomeTimeout } from "./watchdogs.ts";

export const allScenarios: readonly Scenario[] = [
  helloWelcome,
  serverName,
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
  silence,
  welcomeTimeout,
  welcomePatience,
  orderTimeout,
  notFound,
  duplicateName,
  unknownFrames,
  unknownBeforeWelcome,
  headOrder,
  singleResult,
  replicaSet,
  fatalUnauthenticated,
  fatalPermissionDenied,
  fatalInvalidArgument,
  backoff,
  retryHint,
  retryHintHostile,
  reconnectAfterEnd,
  resetAfterWelcome,
  reconnectAfterRestart,
  leave,
  leaveUnanswered,
];
