#!/usr/bin/env node
/**
 * The `promproxy` command: `promproxy server`, `promproxy client`, `promproxy demo`, `promproxy conformance`.
 */
import { runClient } from "./client-command.ts";
import { runConformanceCommand } from "./conformance-command.ts";
import { runDemo } from "./demo.ts";
import { didYouMean } from "./did-you-mean.ts";
import { runServer } from "./server-command.ts";
import { CliError } from "./util.ts";

const usage = `usage: promproxy <command> [options]

commands:
  server   run a promproxy server           (promproxy server --help)
  client   forward scrapes to exporters     (promproxy client --help)
  demo     run a server and an embedded demo client in one process, for trying it out
  conformance  check a client implementation against the protocol (promproxy conformance --help)

Run "promproxy <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "server":
      return runServer(rest);
    case "client":
      return runClient(rest);
    case "demo":
      return runDemo(rest);
    case "conformance":
      return runConformanceCommand(rest);
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(usage + "\n");
      return command === undefined ? 2 : 0;
    default:
      throw new CliError(`unknown command ${JSON.stringify(command)}${didYouMean(command, ["server", "client", "demo", "conformance"])}; run "promproxy --help" for the commands`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`promproxy: ${e instanceof CliError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = e instanceof CliError ? 2 : 1;
  },
);
