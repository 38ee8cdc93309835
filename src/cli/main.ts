#!/usr/bin/env node
/**
 * The `promproxy` command: `promproxy server`, `promproxy client`, `promproxy demo`, `promproxy conformance`.
 *
 * The commands are imported only after the Node.js version check, so that an older Node gets one clear line
 * instead of whatever in them fails first.
 */
import { minimumNode, olderThanMinimumNode, packageVersion } from "../shared/version.ts";

if (olderThanMinimumNode(process.versions.node)) {
  process.stderr.write(`promproxy needs Node ${minimumNode} or newer (this is ${process.version})\n`);
  process.exit(1);
}
const { CliError } = await import("./util.ts");
const { didYouMean } = await import("../shared/did-you-mean.ts");

const usage = `usage: promproxy <command> [options]

commands:
  server   run a promproxy server           (promproxy server --help)
  client   forward scrapes to exporters     (promproxy client --help)
  demo     run a server and an embedded demo client in one process, for trying it out
  conformance  check a client implementation against the protocol (promproxy conformance --help)

  -v, --version  print the version

Run "promproxy <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "server":
      (await import("./v8-tier-up.ts")).tuneTierUp();
      return (await import("./server-command.ts")).runServer(rest);
    case "client":
      (await import("./v8-tier-up.ts")).tuneTierUp();
      return (await import("./client-command.ts")).runClient(rest);
    case "demo":
      return (await import("./demo.ts")).runDemo(rest);
    case "conformance":
      return (await import("./conformance-command.ts")).runConformanceCommand(rest);
    case "-v":
    case "--version":
      process.stdout.write(`${packageVersion}\n`);
      return 0;
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
