/**
 * The flags of `npm run bench`, parsed into one options object the sections read, and `--help`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { StaticSize } from "./static-target.ts";
import { serverExecArgv } from "./server-flags.ts";

export const HELP = `npm run bench -- [flags]

  --help              this text
  --quick             a short run (fewer samples, 3 s of throughput)
  --only=LIST         sections and rows to run: 10k,1m,20m,100m,throughput (embedded), forwarder,
                      idle, storm. Default: 10k,1m,20m,100m,throughput,forwarder. 100m is a pre-rendered
                      100 MiB exposition (memory stays bounded by credit and GC, not by the body).
                      "embedded" stands for 10k,1m,20m,100m,throughput; "all" for everything.
  --clients=LIST      idle: connected clients to measure, e.g. 1000,5000,10000 (the default)
  --storm-clients=N   storm: clients connected when the server is killed (default 10000)
  --storm-down=S      storm: seconds between the kill and the new server's start (default 0)
  --storm-server-cpus=LIST  storm: pin the new server to these CPUs (taskset list, e.g. 0)
  --storm-burn=N      storm: N busy-loop processes pinned beside it during the storm (default 0):
                      with --storm-server-cpus=0, a server on a share of one core (the overload on demand)
  --idle-seconds=S    idle: the CPU window with only heartbeats (default 30)
  --per-process=N     idle/storm: clients per load process (default 2500)
  --fwd-duration=S    forwarder: seconds of the concurrent 10 KB run (default 5; 2 with --quick)
  --fwd-concurrency=N forwarder: concurrent scrapers in that run (default 8)
  --fwd-sizes=LIST    forwarder: bodies to measure (default 10k,1m,20m; e.g. 10k alone for profiling)
  --pushprox=DIR      forwarder: also measure a locally built PushProx (DIR/pushprox-proxy and
                      DIR/pushprox-client; built by hand, never part of this repository)
  --fleet-clients=N   embedded throughput: connected clients (default 100, two fleets)
  --no-live           skip the live prom-client rows (cached rows only)
  --no-cached         skip the cached rows
  --gzip              send Accept-Encoding: gzip instead of identity
  --duration=S        seconds of the proxied throughput run (default 10)
  --concurrency=N     concurrent scrapers in the throughput run (default 16)
  --samples=N         samples per path and row, overriding the defaults
  --blocks=N          forwarder: also print each path's p50 per N consecutive samples (the warm-up curve)
  --paths=LIST        paths to measure: proxy,direct,floor (default all; for profiling one path)
  --server-options=JSON  extra createServer options, e.g. '{"creditBytes":8388608}' (experiments)
  --listen-options=JSON  idle/storm: extra listen() options of the server, e.g. '{"backlog":511}'
  --node-args=ARGS    extra Node flags (space-separated) for the server and app processes, e.g. "--trace-gc"
  --server-node-args=ARGS  extra Node flags for our server processes only (embedded and forwarder sections; not the alt one)
  --forwarder-node-args=ARGS  extra Node flags for our \`promproxy client\` forwarder process (not the alt one)
  --cpu-prof=DIR      write CPU profiles of the server and app processes to DIR (forwarder section:
                      fwd-server.cpuprofile and forwarder.cpuprofile)
  --heap-snapshot=DIR write a server heap snapshot after each latency row and the fleet connect
                      (idle section: server-idle-N.heapsnapshot once the N clients have settled)
  --json=FILE         also write the results as JSON
  --alt=DIR           A/B: a second checkout (with this bench/ in it, e.g. a worktree with a proposal
                      applied) whose server and app run beside these; its proxied scrapes ("alt") are
                      interleaved with ours in every row, and throughput alternates between the two.
                      Its app also gets the direct scrapes ("alt direct"), so that both apps do the
                      same work (render garbage shapes GC); use --paths=proxy,direct for A/B rows
                      (the floor's relay B lives in our app only).
`;

const KNOWN = new Set([
  "help", "quick", "only", "clients", "storm-clients", "storm-down", "storm-server-cpus", "storm-burn", "idle-seconds", "per-process", "fwd-duration", "fwd-concurrency",
  "fwd-sizes", "pushprox", "fleet-clients", "no-live", "no-cached", "gzip", "duration", "concurrency", "samples", "blocks", "paths",
  "server-options", "listen-options", "node-args", "server-node-args", "forwarder-node-args", "cpu-prof", "heap-snapshot", "json", "alt",
]);

export interface BenchOptions {
  quick: boolean;
  /** Sections and embedded rows to run (the expanded --only list). */
  only: Set<string>;
  live: boolean;
  cached: boolean;
  encoding: "gzip" | "identity";
  tpSeconds: number;
  concurrency: number;
  fleetClients: number;
  idleCounts: number[];
  stormClients: number;
  stormDownSeconds: number;
  /** Storm: CPUs to pin the new server to, and busy-loop processes beside it. */
  stormSqueeze?: { cpus: string; burners: number };
  idleSeconds: number;
  perProcess: number;
  fwdSeconds: number;
  fwdConcurrency: number;
  fwdSizes: StaticSize[];
  pushproxDir?: string;
  cpuProfDir?: string;
  heapDir?: string;
  samplesOverride?: number;
  /** --blocks: p50 per this many consecutive forwarder samples. */
  blocks?: number;
  /** Paths to measure: proxy, direct, floor, and alt/altDirect with --alt. */
  paths: Set<string>;
  altDir?: string;
  /** The --server-options JSON text ("{}" without it). */
  serverOptions: string;
  /** The --listen-options JSON text ("{}" without it). */
  listenOptions: string;
  nodeArgs: string[];
  serverNodeArgs: string[];
  /** Extra Node flags of our forwarder process. */
  forwarderNodeArgs: string[];
  json?: string;
}

const EMBEDDED = ["10k", "1m", "20m", "100m", "throughput"];

/** Parses argv (without node and the script); prints the help or a clear error and exits on bad input. */
export function parseOptions(argv: string[]): BenchOptions {
  const args = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) fail(`unknown argument ${a}`);
    if (!KNOWN.has(m[1] as string)) fail(`unknown flag --${m[1]} (see --help)`);
    args.set(m[1] as string, m[2] ?? "true");
  }
  if (args.has("help")) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const quick = args.has("quick");
  const only = new Set(
    (args.get("only") ?? "10k,1m,20m,100m,throughput,forwarder")
      .split(",")
      .flatMap((x) => (x === "embedded" ? EMBEDDED : x === "all" ? [...EMBEDDED, "forwarder", "idle", "storm"] : [x])),
  );
  const paths = new Set((args.get("paths") ?? "proxy,direct,floor").split(","));
  const altDir = args.get("alt") ? path.resolve(args.get("alt") as string) : undefined;
  if (altDir) {
    for (const f of ["server-proc.ts", "app-proc.ts"]) {
      if (!fs.existsSync(path.join(altDir, "bench", f))) fail(`--alt=${altDir} has no bench/${f}; copy this bench/ there first`);
    }
    paths.add("alt");
    if (paths.has("direct")) paths.add("altDirect");
  }
  const words = (k: string) => (args.get(k) ?? "").split(" ").filter(Boolean);
  return {
    quick,
    only,
    live: !args.has("no-live"),
    cached: !args.has("no-cached"),
    encoding: args.has("gzip") ? "gzip" : "identity",
    tpSeconds: Number(args.get("duration") ?? (quick ? 3 : 10)),
    concurrency: Number(args.get("concurrency") ?? 16),
    fleetClients: Number(args.get("fleet-clients") ?? 100),
    idleCounts: (args.get("clients") ?? "1000,5000,10000").split(",").map(Number),
    stormClients: Number(args.get("storm-clients") ?? 10_000),
    stormDownSeconds: Number(args.get("storm-down") ?? 0),
    stormSqueeze: args.get("storm-server-cpus") ? { cpus: args.get("storm-server-cpus") as string, burners: Number(args.get("storm-burn") ?? 0) } : undefined,
    idleSeconds: Number(args.get("idle-seconds") ?? 30),
    perProcess: Number(args.get("per-process") ?? 2500),
    fwdSeconds: Number(args.get("fwd-duration") ?? (quick ? 2 : 5)),
    fwdConcurrency: Number(args.get("fwd-concurrency") ?? 8),
    fwdSizes: (args.get("fwd-sizes") ?? "10k,1m,20m").split(",") as StaticSize[],
    pushproxDir: args.get("pushprox") ? path.resolve(args.get("pushprox") as string) : undefined,
    cpuProfDir: args.get("cpu-prof"),
    heapDir: args.get("heap-snapshot"),
    samplesOverride: args.has("samples") ? Number(args.get("samples")) : undefined,
    blocks: args.has("blocks") ? Number(args.get("blocks")) : undefined,
    paths,
    altDir,
    serverOptions: args.get("server-options") ?? "{}",
    listenOptions: args.get("listen-options") ?? "{}",
    nodeArgs: words("node-args"),
    serverNodeArgs: words("server-node-args"),
    forwarderNodeArgs: words("forwarder-node-args"),
    json: args.get("json"),
  };
}

/** Node flags for a bench child named `name` (the CPU profile is named after it). */
export function execArgvFor(o: BenchOptions, name: string): string[] {
  const a = /server/.test(name) ? serverExecArgv(["--expose-gc", ...o.nodeArgs]) : ["--expose-gc", ...o.nodeArgs];
  if (name === "server" || name === "fwd-server") a.push(...o.serverNodeArgs);
  if (o.cpuProfDir) a.push("--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`, `--cpu-prof-name=${name}.cpuprofile`);
  return a;
}

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}
