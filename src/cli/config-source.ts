/**
 * Where a command's settings come from, the same for `promproxy server` and
 * `promproxy client`: command-line flags over PROMPROXY_* environment
 * variables over a JSON or YAML file (--config or PROMPROXY_CONFIG) over
 * defaults. A flag or file key the command does not know is refused by name,
 * with the nearest known one; so is a PROMPROXY_* variable near a setting's
 * name, and any other is reported as ignored. Pure: reading files is passed in.
 *
 * @internal
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parse as parseYaml } from "yaml";
import type { Sourced } from "./config-values.ts";
import { didYouMean } from "../shared/did-you-mean.ts";
import { envName } from "./flag-table.ts";
import { CliError } from "./util.ts";

type Raw = Record<string, unknown>;

/** The settings' sources of one command line. */
export interface ConfigSources {
  /** The parsed flags, by flag name. */
  flags: Raw;
  /** The config file named, if any. */
  configPath?: string;
  /** What to log once a logger exists: PROMPROXY_* variables ignored, and why. */
  warnings: string[];
  fromEnv(key: string): Sourced | undefined;
  fromFile(key: string): Sourced | undefined;
  /** A single-valued setting: the flag, else the variable, else the file's key. */
  pick(key: string): Sourced | undefined;
}

/** The hint that ends a usage error: the full usage is one command away, not in the way of the error. */
export const helpHint = (command: string) => `run "promproxy ${command} --help" for the options`;

/**
 * Variables Kubernetes defines for a Service named promproxy or promproxy-*
 * (service links: PROMPROXY_SERVICE_HOST, PROMPROXY_PORT_8080_TCP_ADDR, ...):
 * no setting of ours ends like these, so they are not taken for typos.
 */
const serviceLink = /^PROMPROXY(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$/;

/**
 * Parses `argv` against `spec` and finds the other sources. Returns "help"
 * for --help. Throws a one-line CliError naming what is wrong: an unknown
 * flag, PROMPROXY_* variable or file key (with "did you mean"), an unreadable
 * or malformed file.
 */
export function readSources(o: {
  command: "server" | "client";
  argv: string[];
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
  spec: NonNullable<ParseArgsConfig["options"]>;
  /** Keys a file may hold. */
  keys: ReadonlySet<string>;
  /** Settings read from the environment (as PROMPROXY_*), besides CONFIG. */
  envKeys: readonly string[];
  /** The other command's settings: a shared environment may hold them. */
  otherKeys: readonly string[];
}): ConfigSources | "help" {
  const flags = parseFlags(o.command, o.argv, o.spec);
  if (flags["help"]) return "help";
  const envKeys = ["config", ...o.envKeys].map(envName);
  const other = o.command === "server" ? "client" : "server";
  const warnings: string[] = [];
  for (const k of Object.keys(o.env).filter((k) => k.startsWith("PROMPROXY_")).sort()) {
    if (envKeys.includes(k) || serviceLink.test(k)) continue;
    const near = didYouMean(k, envKeys);
    // A near miss is a typo of ours: refused, like an unknown flag. Another command's setting, or a variable far
    // from any (a tool's own PROMPROXY_*), is ignored, saying so.
    if (near) throw new CliError(`${k} is not a setting of promproxy ${o.command}${near}: fix its name or unset it; ${helpHint(o.command)}`);
    if (o.otherKeys.map(envName).includes(k)) warnings.push(`${k} is a setting of promproxy ${other}, not ${o.command}: ignored`);
    else warnings.push(`${k} is not a setting of promproxy ${o.command}: ignored (${helpHint(o.command)})`);
  }
  const fromEnv = (k: string): Sourced | undefined => {
    const v = o.env[envName(k)];
    return v === undefined || v === "" ? undefined : { value: v, from: envName(k) };
  };
  const configPath = (flags["config"] as string | undefined) ?? (fromEnv("config")?.value as string | undefined);
  const file = configPath === undefined ? {} : loadConfigFile(configPath, o.readFile, o.keys);
  const fromFile = (k: string): Sourced | undefined => (file[k] === undefined || file[k] === null ? undefined : { value: file[k], from: `${configPath}: ${k}` });
  return {
    flags,
    warnings,
    configPath,
    fromEnv,
    fromFile,
    pick: (k) => (flags[k] !== undefined ? { value: flags[k], from: `--${k}` } : (fromEnv(k) ?? fromFile(k))),
  };
}

/** The flags, or a one-line usage error: "unknown option --listne (did you mean --listen?); run ...". */
export function parseFlags(command: string, argv: string[], spec: NonNullable<ParseArgsConfig["options"]>): Raw {
  try {
    return parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }).values as Raw;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const unknown = /Unknown option '([^']+)'/.exec(err.message)?.[1];
    if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown) {
      const flag = unknown.replace(/^-+/, "").replace(/=.*$/, "");
      throw new CliError(`unknown option ${unknown}${didYouMean(flag, Object.keys(spec), (k) => `--${k}`)}; ${helpHint(command)}`);
    }
    const positional = /Unexpected argument '([^']+)'/.exec(err.message)?.[1];
    if (positional) throw new CliError(`unexpected argument ${JSON.stringify(positional)} (every option is a --flag); ${helpHint(command)}`);
    throw new CliError(`${err.message.split(". ")[0]}; ${helpHint(command)}`);
  }
}

/** A config file's top-level map; every key must be known. */
export function loadConfigFile(path: string, readFile: (path: string) => string, keys: ReadonlySet<string>): Raw {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    throw new CliError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new CliError(`--config: ${path} is not valid ${/\.json$/i.test(path) ? "JSON" : "YAML or JSON"}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new CliError(`--config: ${path}: want a map of settings at the top level`);
  for (const k of Object.keys(doc)) checkKey(k, keys, `--config: ${path}`);
  return doc as Raw;
}

/** Refuses a key that is not in `keys`: the nearest known one, or else the list. */
export function checkKey(key: string, keys: ReadonlySet<string>, where: string): void {
  if (keys.has(key)) return;
  const hint = didYouMean(key, keys, (k) => JSON.stringify(k));
  throw new CliError(`${where}: unknown key ${JSON.stringify(key)}${hint || ` (known: ${[...keys].join(", ")})`}`);
}
